"""Training's part in deleting a project (feedback.services.project_deletion): refuse while its
rounds or jobs are under way, and hand over the jobs' folders to remove with it."""

from pathlib import Path

from django.dispatch import receiver

from feedback.errors import ServiceError
from feedback.services.project_deletion import deleting
from training.jobs import job_output_dir
from training.models import AlignmentRound, JobStatus, TrainingJob
from training.rounds import ACTIVE_STATES


@receiver(deleting)
def before_project_deletion(sender, project_id: int, **kwargs) -> list[Path]:
    # A worker would go on writing for rows that are gone.
    running = AlignmentRound.objects.filter(project_id=project_id, state__in=ACTIVE_STATES)
    if running.exists():
        numbers = ", ".join(
            str(n) for n in running.order_by("number").values_list("number", flat=True)
        )
        raise ServiceError(
            f"Round {numbers} of this project is under way; cancel it first. Nothing was deleted.",
            code="conflict",
        )
    jobs = TrainingJob.objects.filter(project_id=project_id)
    if jobs.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).exists():
        raise ServiceError(
            "A training job of this project is queued or running; cancel it first. Nothing was "
            "deleted.",
            code="conflict",
        )
    return [job_output_dir(job) for job in jobs.only("pk", "kind")]
