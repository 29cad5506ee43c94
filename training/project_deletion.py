"""Training's part in deleting a project (feedback.services.project_deletion): refuse while its
rounds or jobs are under way, and hand over the jobs' folders to remove with it."""

from pathlib import Path

from django.dispatch import receiver

from feedback.errors import ServiceError
from feedback.services.project_deletion import deleting
from feedback.wording import one_or_many
from training.jobs import job_output_dir
from training.models import AlignmentRound, JobStatus, TrainingJob
from training.rounds import ACTIVE_STATES


@receiver(deleting)
def before_project_deletion(sender, project_id: int, **kwargs) -> list[Path]:
    # A worker would go on writing for rows that are gone.
    running = AlignmentRound.objects.filter(project_id=project_id, state__in=ACTIVE_STATES)
    numbers = list(running.order_by("number").values_list("number", flat=True))
    if numbers:
        many = len(numbers)
        raise ServiceError(
            f"{one_or_many(many, 'Round', 'Rounds')} {', '.join(map(str, numbers))} of this "
            f"project {one_or_many(many, 'is', 'are')} under way; cancel "
            f"{one_or_many(many, 'it', 'them')} first. Nothing was deleted.",
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
