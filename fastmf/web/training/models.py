"""A training job: its settings, progress (one history record per epoch) and outcome."""

from django.conf import settings
from django.db import models


class TrainingJob(models.Model):
    QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
    STATUSES = [(s, s) for s in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)]
    ACTIVE = (QUEUED, RUNNING)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=STATUSES, default=QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    kind = models.CharField(max_length=16)
    params = models.JSONField(default=dict)
    holdout = models.FloatField(default=0.1, help_text="Share of the catalogue's ratings held out for validation.")
    epochs = models.PositiveIntegerField(default=0)
    history = models.JSONField(default=list, blank=True)
    phase = models.CharField(max_length=200, blank=True, default="")
    message = models.TextField(blank=True, default="")
    catalogue_ratings = models.PositiveBigIntegerField(default=0)
    site_ratings = models.PositiveBigIntegerField(default=0)
    site_users = models.PositiveIntegerField(default=0)
    model_path = models.CharField(max_length=1000, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [("retrain_model", "Can retrain the served model")]

    def __str__(self) -> str:
        return f"job {self.pk}: {self.kind} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    def progress(self) -> dict:
        """The job as JSON for its progress page."""
        return {
            "id": self.pk,
            "status": self.status,
            "kind": self.kind,
            "params": self.params,
            "holdout": self.holdout,
            "epochs": self.epochs,
            "epochs_done": len(self.history),
            "history": self.history,
            "phase": self.phase,
            "message": self.message,
            "catalogue_ratings": self.catalogue_ratings,
            "site_ratings": self.site_ratings,
            "site_users": self.site_users,
            "cancel_requested": self.cancel_requested,
            "created": self.created.isoformat() if self.created else None,
            "started": self.started.isoformat() if self.started else None,
            "finished": self.finished.isoformat() if self.finished else None,
        }
