"""The database itself holds the domain's invariants, whatever Python code does."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from feedback.models import (
    AnnotationTask,
    Assignment,
    Completion,
    Judgment,
    Membership,
    ModelVersion,
    PreferencePair,
    Project,
    Prompt,
    TaskItem,
)

pytestmark = pytest.mark.django_db


def refused(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_project_needs_a_mode_and_positive_overlap():
    refused(lambda: Project.objects.create(name="x", pairwise_enabled=False))
    refused(lambda: Project.objects.create(name="y", overlap=0))


def test_membership_is_unique_and_role_valid(project, make_user):
    user = make_user()
    Membership.objects.create(project=project, user=user, role="annotator")
    refused(lambda: Membership.objects.create(project=project, user=user, role="reviewer"))
    refused(lambda: Membership.objects.create(project=project, user=make_user(), role="boss"))


def test_prompt_needs_content_and_is_unique_per_project(project):
    refused(lambda: Prompt.objects.create(project=project, text="", content_hash="h0"))
    Prompt.objects.create(project=project, text="hi", content_hash="h1")
    refused(lambda: Prompt.objects.create(project=project, text="hi again", content_hash="h1"))


def test_model_version_cannot_be_its_own_parent(project):
    version = ModelVersion.objects.create(project=project, name="v1")
    version.parent_id = version.pk
    refused(version.save)
    refused(lambda: ModelVersion.objects.create(project=project, name="v1"))


def test_task_counters_stay_within_overlap(make_task):
    task = make_task()
    refused(lambda: AnnotationTask.objects.filter(pk=task.pk).update(slots_taken=2))
    refused(lambda: AnnotationTask.objects.filter(pk=task.pk).update(judgment_count=1))
    refused(lambda: AnnotationTask.objects.filter(pk=task.pk).update(judgments_wanted=0))
    refused(lambda: AnnotationTask.objects.filter(pk=task.pk).update(is_gold=True))


def test_task_items_unique(make_task):
    task = make_task()
    item = task.items.first()
    other = Completion.objects.create(prompt=task.prompt, text="x")
    refused(lambda: TaskItem.objects.create(task=task, completion=item.completion, position=5))
    refused(lambda: TaskItem.objects.create(task=task, completion=other, position=item.position))


def test_one_assignment_and_judgment_per_annotator(make_task, make_member):
    task = make_task()
    user = make_member()
    now = timezone.now()
    Assignment.objects.create(
        task=task, annotator=user, leased_at=now, expires_at=now + timedelta(1)
    )
    refused(
        lambda: Assignment.objects.create(
            task=task, annotator=user, leased_at=now, expires_at=now + timedelta(1)
        )
    )
    Judgment.objects.create(
        task=task, annotator=user, kind="pairwise", choice="a", idempotency_key="k"
    )
    refused(
        lambda: Judgment.objects.create(
            task=task, annotator=user, kind="pairwise", choice="b", idempotency_key="k2"
        )
    )


def test_lease_must_end_after_it_starts(make_task, make_member):
    now = timezone.now()
    refused(
        lambda: Assignment.objects.create(
            task=make_task(), annotator=make_member(), leased_at=now, expires_at=now
        )
    )


def test_judgment_shape_matches_its_kind(make_task, make_member):
    task, user = make_task(), make_member()

    def judgment(**fields):
        return lambda: Judgment.objects.create(
            task=task, annotator=user, idempotency_key="k", **fields
        )

    refused(judgment(kind="pairwise"))  # no choice
    refused(judgment(kind="pairwise", choice="maybe"))
    refused(judgment(kind="ranking"))  # no ranking
    refused(judgment(kind="rating"))  # no ratings
    refused(judgment(kind="ranking", ranking=[[1]], choice="a"))  # choice on a ranking
    refused(judgment(kind="pairwise", choice="tie", strength="much"))  # strength without a winner
    refused(judgment(kind="pairwise", choice="a", strength="loud"))


def test_preference_pair_needs_two_completions_and_a_non_negative_margin(make_task):
    task = make_task()
    a, b = (item.completion for item in task.items.all())
    refused(
        lambda: PreferencePair.objects.create(
            project=task.project, prompt=task.prompt, chosen=a, rejected=a
        )
    )
    refused(
        lambda: PreferencePair.objects.create(
            project=task.project, prompt=task.prompt, chosen=a, rejected=b, margin=-1
        )
    )
    PreferencePair.objects.create(project=task.project, prompt=task.prompt, chosen=a, rejected=b)
    refused(
        lambda: PreferencePair.objects.create(
            project=task.project, prompt=task.prompt, chosen=a, rejected=b
        )
    )


# Deleting an import deletes its batch row alone: one lookup per table, a scan each is cheap.
UNINDEXED_REFERENCES = {
    ("feedback_prompt", "import_batch_id"),
    ("feedback_completion", "import_batch_id"),
    ("feedback_annotationtask", "import_batch_id"),
    ("feedback_modelversion", "import_batch_id"),
}


def test_references_that_deletions_look_up_are_indexed():
    """The database checks each deleted row for rows that still reference it, one lookup a
    row: a reference with no index leading with its column turns deleting n rows into n scans
    of the referencing table (hours for a 100k-line import where the checks run)."""
    from django.apps import apps
    from django.db import connection

    unindexed = set()
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            table = model._meta.db_table
            constraints = connection.introspection.get_constraints(cursor, table)
            leading = {c["columns"][0] for c in constraints.values() if c["index"] or c["unique"]}
            for field in model._meta.local_fields:
                if field.is_relation and field.db_constraint and field.column not in leading:
                    unindexed.add((table, field.column))
    assert unindexed == UNINDEXED_REFERENCES
