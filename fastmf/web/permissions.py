"""Who may do what beyond rating: retraining is for staff with the ``training.retrain_model`` permission
(superusers have every permission; give it to other staff in the admin)."""

RETRAIN = "training.retrain_model"


def can_retrain(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff and user.has_perm(RETRAIN))
