"""Export snapshots: a record of exactly what a dataset download contained."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .projects import Project


class ExportKind(models.TextChoices):
    PAIRS = "pairs", "Preference pairs"
    JUDGMENTS = "judgments", "Raw judgments"
    RATINGS = "ratings", "Ratings"
    OUTPUTS = "outputs", "Outputs"


class ExportStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"


class ExportSnapshot(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    kind = models.CharField(max_length=16, choices=ExportKind.choices)
    format = models.CharField(max_length=32)
    filters = models.JSONField(default=dict, blank=True)
    row_count = models.PositiveBigIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the bytes.")
    byte_size = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Length of the bytes; unknown until complete."
    )
    path = models.CharField(max_length=1000, blank=True, help_text="Stored copy, when kept.")
    status = models.CharField(
        max_length=16, choices=ExportStatus.choices, default=ExportStatus.RUNNING
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ExportKind.values), name="export_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ExportStatus.values), name="export_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=ExportStatus.COMPLETE) | ~Q(content_hash=""),
                name="complete_export_has_hash",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} export #{self.pk}"
