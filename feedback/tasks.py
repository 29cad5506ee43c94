"""Celery entry points for the feedback domain."""

from celery import shared_task

from feedback.services import release_expired_leases
from feedback.services.exports import fail_abandoned_exports
from feedback.services.queue import release_all_expired_leases


@shared_task(acks_late=True)
def release_expired_leases_task(project_id: int | None = None) -> int:
    """Free the slots of abandoned leases in a project, or (periodic) in every project that has
    some; safe to run twice. Asking for work frees them too: this keeps the projects' counts of
    open work true while nobody asks."""
    if project_id is not None:
        return release_expired_leases(project_id)
    return release_all_expired_leases()


@shared_task(time_limit=120)
def watch_exports() -> int:
    """Periodic: fail the export snapshots a dead process left running."""
    return fail_abandoned_exports()
