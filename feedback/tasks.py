"""Celery entry points for the feedback domain."""

from celery import shared_task

from feedback.services import release_expired_leases


@shared_task(acks_late=True)
def release_expired_leases_task(project_id: int) -> int:
    """Free the slots of abandoned leases in a project; safe to run twice."""
    return release_expired_leases(project_id)
