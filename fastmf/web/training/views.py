"""The training page (staff only), a job's progress, and the data page's figures."""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import FileResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from fastmf.web.engine import get_engine
from fastmf.web.errors import json_error, problem
from fastmf.web.permissions import can_retrain
from fastmf.web.training import jobs
from fastmf.web.training.equations import EQUATIONS
from fastmf.web.training.forms import JobForm
from fastmf.web.training.models import TrainingJob

CHART_W, CHART_H, PAD = 560, 220, 36


def staff_only(view):
    """Anonymous visitors are sent to log in; users without the retrain permission get 403."""

    @functools.wraps(view)
    def inner(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.path.startswith("/api/"):
                return json_error(401, "log in first")
            return redirect_to_login(request.get_full_path())
        if not can_retrain(request.user):
            return problem(
                request, 403, "Retraining is for staff users with the permission 'Can retrain the served model'."
            )
        return view(request, *args, **kwargs)

    return inner


@staff_only
def training(request):
    served = get_engine().current()
    current = served.model.kind if served.model.kind in jobs.KINDS else "als"
    kind = request.POST.get("kind") or request.GET.get("kind") or current
    if kind not in jobs.KINDS:
        return problem(request, 400, f"Unknown model kind {kind[:40]!r}: choose one of {', '.join(jobs.KINDS)}.")
    initial = {k: v for k, v in served.model.get_params().items()} if kind == served.model.kind else {}
    form = JobForm(kind, request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            with transaction.atomic():
                jobs.mark_stale()
                busy = TrainingJob.objects.filter(status__in=TrainingJob.ACTIVE).first()
                if busy is None:
                    job = TrainingJob.objects.create(
                        created_by=request.user,
                        kind=kind,
                        params=form.params(),
                        holdout=form.cleaned_data["holdout"],
                        epochs=int(form.params().get("epochs") or 0),
                    )
            if busy is not None:
                return problem(
                    request,
                    409,
                    f"Training job {busy.pk} is still {busy.status}: wait for it to finish or cancel it first.",
                )
            jobs.start(job)
            messages.success(request, f"Training job {job.pk} started.")
            return redirect("training-job", pk=job.pk)
        status = 400
    return render(
        request,
        "training/training.html",
        {
            "form": form,
            "kind": kind,
            "kinds": jobs.KINDS.items(),
            "model": served.describe(),
            "equations": EQUATIONS.get(served.model.kind, []),
            "jobs": TrainingJob.objects.all()[:10],
            "runner": settings.FASTMF_JOB_RUNNER,
        },
        status=status,
    )


def _job(pk) -> TrainingJob | None:
    jobs.mark_stale()
    return TrainingJob.objects.filter(pk=pk).first()


def rmse_chart(history: list) -> dict | None:
    """SVG polylines of the training and validation RMSE per epoch (drawn by the server: no JavaScript)."""
    series = {
        "train": [(r["epoch"], r.get("train_rmse")) for r in history],
        "validation": [(r["epoch"], r.get("test_rmse", r.get("val_rmse"))) for r in history],
    }
    values = [v for pts in series.values() for _, v in pts if v is not None]
    if not values:
        return None
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1e-3
    last = max(1, max(e for e, _ in series["train"]))

    def xy(e, v):
        x = PAD + (e - 1) / max(1, last - 1) * (CHART_W - 2 * PAD)
        y = CHART_H - PAD - (v - lo) / (hi - lo) * (CHART_H - 2 * PAD)
        return f"{x:.1f},{y:.1f}"

    lines = {name: " ".join(xy(e, v) for e, v in pts if v is not None) for name, pts in series.items()}
    return {
        "w": CHART_W,
        "h": CHART_H,
        "pad": PAD,
        "lines": lines,
        "lo": lo,
        "hi": hi,
        "epochs": last,
        "bottom": CHART_H - PAD,
        "right": CHART_W - PAD,
    }


@staff_only
def job(request, pk):
    found = _job(pk)
    if found is None:
        return problem(request, 404, f"There is no training job {pk}.")
    return render(
        request, "training/job.html", {"job": found, "chart": rmse_chart(found.history), "refresh": found.active}
    )


@staff_only
def job_json(request, pk):
    found = _job(pk)
    if found is None:
        return json_error(404, f"there is no training job {pk}")
    return JsonResponse(found.progress())


@staff_only
@require_POST
def cancel(request, pk):
    found = _job(pk)
    if found is None:
        return problem(request, 404, f"There is no training job {pk}.")
    if found.active:
        TrainingJob.objects.filter(pk=pk).update(cancel_requested=True)
        messages.info(request, f"Job {pk} stops after its current epoch; the served model stays as it is.")
    return redirect("training-job", pk=pk)


def data(request):
    served = get_engine().current()
    label = served.catalogue.label
    status = jobs.figure_status(label, served.key)
    folders = {"data": f"data-{label}", "model": f"model-{served.key}"}
    figures = {
        part: [
            {"name": name, "url": f"/data/figures/{folders[part]}/{name}"}
            for name in (status.get(part) or {}).get("written", [])
        ]
        for part in ("data", "model")
    }
    c = served.catalogue
    return render(
        request,
        "training/data.html",
        {
            "status": status,
            "figures": figures,
            "catalogue": c,
            "model": served.describe(),
            "skipped": [n for part in ("data", "model") for n in (status.get(part) or {}).get("skipped", [])],
            "refresh": status["state"] == "drawing",
        },
    )


def figure(request, folder, name):
    """One drawn figure, only if the folder's marker lists it (no other file can be named)."""
    base = jobs.home() / "figures"
    if "/" in folder or folder.startswith("."):
        return problem(request, 404, "No such figure.")
    marker = jobs.read_marker(base / folder)
    if not marker or name not in marker.get("written", []):
        return problem(request, 404, f"No figure {name!r} here.")
    response = FileResponse(open(base / folder / name, "rb"), content_type="image/png")
    response["Cache-Control"] = "public, max-age=86400"
    return response
