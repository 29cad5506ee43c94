"""The queue's lease statement on PostgreSQL (feedback/services/queue.py): a connection plans it
once and reuses the plan, instead of planning it on every call."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from feedback import services
from feedback.models import AnnotationTask, Assignment
from feedback.models.tasks import AssignmentStatus, TaskStatus
from tests.conftest import requires_services

pytestmark = requires_services

HISTORY = 1500  # tasks the annotator has judged already


@pytest.fixture
def veteran(project, make_member, make_task):
    """An annotator with HISTORY judged (now complete) tasks and a few open ones left, with
    statistics taken as autovacuum would have."""
    annotator = make_member()
    prompt = services.create_prompt(project_id=project.pk, text="An old question?")
    tasks = AnnotationTask.objects.bulk_create(
        AnnotationTask(
            project=project,
            prompt=prompt,
            mode="pairwise",
            judgments_wanted=1,
            slots_taken=1,
            judgment_count=1,
            status=TaskStatus.COMPLETE,
        )
        for _ in range(HISTORY)
    )
    earlier = timezone.now() - timedelta(days=1)
    Assignment.objects.bulk_create(
        Assignment(
            task=task,
            annotator=annotator,
            status=AssignmentStatus.SUBMITTED,
            leased_at=earlier,
            expires_at=earlier + timedelta(hours=1),
            finished_at=earlier,
        )
        for task in tasks
    )
    for _ in range(3):
        make_task()
    with connection.cursor() as cursor:
        for model in (AnnotationTask, Assignment):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return annotator


def test_a_connection_plans_the_lease_statement_once(project, veteran):
    for _ in range(15):  # psycopg prepares at the 5th call; PostgreSQL then tries 5 fresh plans
        assert services.next_task_for(annotator_id=veteran.pk, project_id=project.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["%WITH member AS%"],
        )
        generic_plans, custom_plans = cursor.fetchone()
    # With the statuses as parameters, the generic plan could not use their statistics, and
    # PostgreSQL planned the statement afresh on every call: more work than running it.
    assert generic_plans >= 1
    assert custom_plans <= 5
