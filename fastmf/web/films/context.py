"""Template context shared by every page."""

from fastmf.web.permissions import can_retrain


def site(request):
    user = getattr(request, "user", None)
    return {"can_retrain": bool(user is not None and can_retrain(user))}
