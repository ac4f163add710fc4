"""Server time of every response in the standard ``Server-Timing`` header (``app;dur=MILLISECONDS``).

Measured from the first middleware to the response (session, user, queries, the view and its
template), so browsers' developer tools and ``bench/web_latency.py`` read the time spent in the
application apart from the network and the WSGI server.
"""

from __future__ import annotations

import time


class ServerTiming:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - start) * 1000:.2f}"
        return response
