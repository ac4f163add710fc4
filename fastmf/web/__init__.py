"""The fastmf web application: a small Django project (``fastmf web``; Django is the ``web`` extra).

Accounts, title search, ratings, recommendations folded in from a user's ratings against the
served model, data figures, staff-only retraining in the background and a JSON API. The project
is ``fastmf.web`` (settings, URLs, the WSGI application) with two apps: ``fastmf.web.films``
(films, ratings, recommendations, the API) and ``fastmf.web.training`` (training jobs, figures).
Nothing here is imported by the rest of fastmf: the command line loads it only in ``fastmf web``.
"""
