"""A real Celery worker process takes a task from Redis and writes to PostgreSQL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from feedback.models import AnnotationTask, Assignment
from feedback.services import next_task_for
from feedback.tasks import release_expired_leases_task
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def test_worker_frees_abandoned_leases(celery_worker_process, project, make_member, make_task):
    task = make_task()
    lease = next_task_for(annotator_id=make_member().pk, project_id=project.pk)
    Assignment.objects.filter(pk=lease.pk).update(
        leased_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(hours=1),
    )
    result = release_expired_leases_task.delay()  # as the beat sends it: every project
    assert result.id
    wait_for(lambda: not Assignment.objects.filter(pk=lease.pk).exists(), timeout=60)
    assert AnnotationTask.objects.get(pk=task.pk).slots_taken == 0
