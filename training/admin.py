"""Django admin for rounds and jobs."""

from django.contrib import admin

from training.models import AlignmentRound, TrainingJob


@admin.register(AlignmentRound)
class AlignmentRoundAdmin(admin.ModelAdmin):
    list_display = ["__str__", "method", "state", "policy", "result_version", "created_at"]
    list_filter = ["project", "method", "state"]


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "progress",
        "model_version",
        "heartbeat_at",
        "created_at",
    ]
    list_filter = ["kind", "status", "project"]
    readonly_fields = ["metrics_history", "log_tail", "artifacts", "heartbeat_at"]
