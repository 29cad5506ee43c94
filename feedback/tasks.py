"""Celery entry points for the feedback domain."""

from celery import shared_task

from feedback.services import release_expired_leases
from feedback.services.exports import fail_abandoned_exports


@shared_task(acks_late=True)
def release_expired_leases_task(project_id: int) -> int:
    """Free the slots of abandoned leases in a project; safe to run twice."""
    return release_expired_leases(project_id)


@shared_task(time_limit=120)
def watch_exports() -> int:
    """Periodic: fail the export snapshots a dead process left running."""
    return fail_abandoned_exports()
