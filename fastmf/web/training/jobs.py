"""Training jobs and figure drawing, run apart from the requests.

A request only records a job and starts it: by default in a separate process
(``python -m django fastmf_train JOB``, ``settings.FASTMF_JOB_RUNNER = "subprocess"``), so
training never holds the web server's interpreter, whatever the size of the data. The job
trains on the catalogue's ratings (less a held-out validation share) plus every site user's
ratings, writes one history record per epoch to the database (the progress page reads them),
and saves the model over the served file with :meth:`~fastmf.models.base.Recommender.save`, one
``os.replace``; every server process then loads the new file in the background and swaps it in
(:class:`fastmf.web.engine.Engine`). ``"thread"`` and ``"inline"`` runners exist for tests.

Figures of the data page are drawn the same way, once per model (keyed by the model file's
identity) and once per catalogue, into the home folder, and served from there.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from django.conf import settings
from django.db import close_old_connections

from fastmf.common.errors import FastMFError
from fastmf.common.files import atomic_file
from fastmf.data_prep.dataset import Dataset, load_dataset
from fastmf.data_prep.splits import random_split
from fastmf.drivers.plots import plot_data, plot_model
from fastmf.registry import build_model, load_model
from fastmf.web.engine import check_servable, file_stamp, get_engine, model_key
from fastmf.web.env import catalogue_slug
from fastmf.web.films.models import Rating
from fastmf.web.training.models import TrainingJob

log = logging.getLogger("fastmf.web")

#: the model kinds the site can train and serve (rating models with item factors)
KINDS = {
    "als": "ALS with biases",
    "features": "ALS with a genre prior (cold start)",
    "vi": "Variational Bayes (predictions with uncertainty)",
}
#: history fields kept per epoch
HISTORY_KEYS = ("epoch", "seconds", "train_rmse", "test_rmse", "val_rmse", "objective", "elbo")
MARKER = "figures.json"
LOCK = ".drawing"


class JobCancelled(Exception):
    """A staff user asked the job to stop."""


def now():
    return datetime.datetime.now(datetime.UTC)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finite(value):
    """JSON-safe numbers: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return finite(value.item())
    return value


# --------------------------------------------------------------------------- starting


def home() -> Path:
    folder = Path(settings.HOME)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def child_env() -> dict:
    """The environment of a job process: this one's (the settings come from it), with the settings module."""
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "fastmf.web.settings"}


def spawn(command: str, *args: str, log_name: str) -> subprocess.Popen:
    """Run ``python -m django COMMAND ARGS`` in its own session (it outlives a restart of the server), its
    output in ``HOME/jobs/LOG_NAME``."""
    folder = home() / "jobs"
    folder.mkdir(exist_ok=True)
    with open(folder / log_name, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", command, *args],
            env=child_env(),
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start(job: TrainingJob) -> None:
    """Run ``job`` with the configured runner (the request returns at once unless the runner is inline)."""
    runner = settings.FASTMF_JOB_RUNNER
    if runner == "inline":
        run(job.pk)
    elif runner == "thread":
        threading.Thread(target=_in_thread, args=(run, job.pk), name=f"fastmf-job-{job.pk}", daemon=True).start()
    else:
        try:
            proc = spawn("fastmf_train", str(job.pk), log_name=f"job-{job.pk}.log")
        except OSError as exc:
            TrainingJob.objects.filter(pk=job.pk).update(
                status=TrainingJob.FAILED, finished=now(), message=f"could not start the training process: {exc}"
            )
            return
        TrainingJob.objects.filter(pk=job.pk, pid__isnull=True).update(pid=proc.pid)


def _in_thread(func, *args):
    try:
        func(*args)
    finally:
        close_old_connections()


def mark_stale() -> None:
    """Jobs whose process ended without finishing them are failed (a killed process, a reboot)."""
    for job in TrainingJob.objects.filter(status__in=TrainingJob.ACTIVE, pid__isnull=False):
        if not pid_alive(job.pid):
            TrainingJob.objects.filter(pk=job.pk, status__in=TrainingJob.ACTIVE).update(
                status=TrainingJob.FAILED, finished=now(), message="the training process ended without finishing"
            )


# --------------------------------------------------------------------------- running


class Progress:
    """The fit callback: one history record per epoch into the database, and the cancel check."""

    def __init__(self, job: TrainingJob):
        self.job = job

    def __call__(self, record: dict) -> None:
        job = self.job
        if record.get("event") == "compiling":
            job.phase = "compiling kernels (first run after installing fastmf only)"
            job.save(update_fields=["phase"])
            return
        job.history.append({k: finite(record[k]) for k in HISTORY_KEYS if k in record})
        job.phase = f"epoch {record.get('epoch')} of {job.epochs}"
        job.save(update_fields=["history", "phase"])
        if TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
            raise JobCancelled()


def site_ratings(data: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(user ids, item ids, stars, users)`` of the site's ratings of catalogue films, users given ids
    after the catalogue's (integers past its largest, or ``site-PK`` for text ids)."""
    rows = list(Rating.objects.values_list("user_id", "item", "stars").order_by("user_id", "item"))
    keys = {str(x): x for x in data.item_map.ids.tolist()}
    rows = [(u, keys[i], s) for u, i, s in rows if i in keys]
    if not rows:
        empty = np.zeros(0)
        return empty.astype(data.user_map.ids.dtype), empty.astype(data.item_map.ids.dtype), empty, 0
    pks = np.asarray([r[0] for r in rows], dtype=np.int64)
    if data.user_map.is_int:
        users = pks + (int(data.user_map.ids.max()) + 1)
    else:
        users = np.asarray([f"site-{pk}" for pk in pks])
    items = np.asarray([r[1] for r in rows], dtype=data.item_map.ids.dtype)
    return users, items, np.asarray([r[2] for r in rows], dtype=np.float64), int(np.unique(pks).size)


def training_data(job: TrainingJob) -> tuple[Dataset, Dataset | None]:
    """The catalogue's ratings less a held-out share (the validation set), plus every site user's ratings."""
    data = load_dataset(settings.FASTMF_DATA)
    if job.holdout > 0:
        split = random_split(data, job.holdout, seed=int(job.params.get("random_state", 42)))
        base, validation = split.train, split.test
    else:
        base, validation = data, None
    users, items, stars, n_users = site_ratings(data)
    job.catalogue_ratings, job.site_ratings, job.site_users = base.n_ratings, int(stars.size), n_users
    if not stars.size:
        return base, validation
    table = pa.table(
        {
            "user_id": np.concatenate([base.user_map.ids[base.user_of_entry], users]),
            "item_id": np.concatenate([base.item_map.ids[base.indices], items]),
            "rating": np.concatenate([base.data.astype(np.float64), stars]),
        }
    )
    train = Dataset.from_table(
        table,
        item_map=data.item_map,
        rating_range=data.rating_range,
        items=data.items_table,
        source=f"{data.source} + site ratings",
    )
    return train, validation


def run(job_id: int) -> None:
    """Run one queued job to its end (done, failed or cancelled)."""
    claimed = TrainingJob.objects.filter(pk=job_id, status=TrainingJob.QUEUED).update(
        status=TrainingJob.RUNNING, started=now(), pid=os.getpid(), phase="loading the ratings"
    )
    if not claimed:
        return
    job = TrainingJob.objects.get(pk=job_id)
    try:
        model = build_model(job.kind, dict(job.params))
        job.epochs = int(getattr(model, "epochs", 0))
        train, validation = training_data(job)
        job.phase = "training"
        job.save(update_fields=["epochs", "phase", "catalogue_ratings", "site_ratings", "site_users"])
        model.fit(train, eval_set=validation, callback=Progress(job))
        job.phase = "saving the model"
        job.save(update_fields=["phase"])
        path = settings.FASTMF_MODEL
        check_servable(model, path)  # the served file is replaced only by a model the site can serve
        model.save(path)
        last = model.history_[-1] if model.history_ else {}
        summary = [
            f"{model.kind} trained on {train.n_ratings:,} ratings ({job.site_ratings:,} from "
            f"{job.site_users:,} site users) in {model.fit_seconds_:.1f} s"
        ]
        if last.get("test_rmse") is not None and validation is not None:
            summary.append(f"validation RMSE {last['test_rmse']:.4f} on {validation.n_ratings:,} held-out ratings")
        job.status, job.finished, job.phase = TrainingJob.DONE, now(), "done: the new model is served"
        job.message, job.model_path = "; ".join(summary), path
        job.save()
        if settings.FASTMF_JOB_RUNNER != "subprocess":
            get_engine().reload()  # this process serves it now; the others notice the replaced file
    except JobCancelled:
        TrainingJob.objects.filter(pk=job.pk).update(
            status=TrainingJob.CANCELLED,
            finished=now(),
            phase="cancelled",
            message="cancelled; the served model is unchanged",
        )
    except (FastMFError, MemoryError) as exc:
        TrainingJob.objects.filter(pk=job.pk).update(
            status=TrainingJob.FAILED, finished=now(), phase="failed", message=str(exc) or "out of memory"
        )
    except Exception as exc:  # reported on the job page instead of vanishing with the process
        log.exception("training job %s failed", job.pk)
        TrainingJob.objects.filter(pk=job.pk).update(
            status=TrainingJob.FAILED,
            finished=now(),
            phase="failed",
            message=f"unexpected error: {type(exc).__name__}: {exc}",
        )


# --------------------------------------------------------------------------- figures


def figure_folders(label: str, key: str) -> tuple[Path, Path]:
    base = home() / "figures"
    return base / f"data-{label}", base / f"model-{key}"


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def figure_status(label: str, key: str) -> dict:
    """``{"state": "ready" | "drawing" | "failed", "data": marker, "model": marker}`` for one catalogue
    and model; starts drawing (once) when figures are missing."""
    data_dir, model_dir = figure_folders(label, key)
    markers = {"data": read_marker(data_dir), "model": read_marker(model_dir)}
    if all(markers.values()):
        failed = [m["error"] for m in markers.values() if m.get("error")]
        return {"state": "failed" if failed else "ready", "error": "; ".join(failed), **markers}
    model_dir.mkdir(parents=True, exist_ok=True)
    lock = model_dir / LOCK
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        fresh = time.time() - _mtime(lock) < 30
        if pid_alive(pid) or (not pid and fresh):
            return {"state": "drawing", **markers}
        lock.unlink(missing_ok=True)  # a drawing process that died: start again
        return figure_status(label, key)
    os.close(fd)
    if settings.FASTMF_JOB_RUNNER == "inline":
        draw_figures()
        return figure_status(label, key)
    if settings.FASTMF_JOB_RUNNER == "thread":
        lock.write_text(str(os.getpid()))
        threading.Thread(target=_in_thread, args=(draw_figures,), daemon=True).start()
    else:
        try:
            proc = spawn("fastmf_figures", log_name="figures.log")
        except OSError as exc:
            lock.unlink(missing_ok=True)
            return {"state": "failed", "error": f"could not start drawing: {exc}", **markers}
        lock.write_text(str(proc.pid))
    return {"state": "drawing", **markers}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _write_marker(folder: Path, content: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_file(str(folder / MARKER), lambda tmp: Path(tmp).write_text(json.dumps(content)))


def draw_figures() -> None:
    """Draw the figures of the served model file and its catalogue that are missing (``fastmf plot data``
    and ``fastmf plot model``), each folder's marker written last."""
    path = settings.FASTMF_MODEL
    label = catalogue_slug(settings.FASTMF_DATA)
    stamp = file_stamp(path)
    model = load_model(path)
    key = model_key(model.kind, stamp)
    data_dir, model_dir = figure_folders(label, key)
    try:
        data = load_dataset(settings.FASTMF_DATA)
        for folder, draw in (
            (data_dir, lambda: plot_data(data, str(data_dir))),
            (model_dir, lambda: plot_model(model, str(model_dir), data)),
        ):
            if read_marker(folder) is not None:
                continue
            try:
                written, skipped = draw()
                _write_marker(folder, {"written": [os.path.basename(p) for p in written], "skipped": skipped})
            except FastMFError as exc:
                _write_marker(folder, {"written": [], "skipped": [], "error": str(exc)})
    finally:
        (model_dir / LOCK).unlink(missing_ok=True)
