"""Instances from hand-written SQL match what the ORM loads, converters included."""

import pytest
from django.db import connection
from django.utils import timezone

from feedback.models import Assignment
from feedback.raw_rows import first_instance

pytestmark = pytest.mark.django_db


def test_first_instance_matches_the_orm_with_json_and_datetimes(make_task, make_user):
    task = make_task(n=2)
    assignment = Assignment.objects.create(
        task=task,
        annotator=make_user(),
        leased_at=timezone.now(),
        expires_at=timezone.now(),
        shown_order=[3, 1, 2],
    )
    table = Assignment._meta.db_table
    sql = f"SELECT * FROM {table} WHERE id = %s"
    for _ in range(2):  # the second call reuses the cached plan
        loaded = first_instance(Assignment, sql, [assignment.pk])
        expected = Assignment.objects.get(pk=assignment.pk)
        for field in Assignment._meta.concrete_fields:
            assert getattr(loaded, field.attname) == getattr(expected, field.attname), field.name
    assert loaded.shown_order == [3, 1, 2] and loaded.leased_at.tzinfo is not None
    assert loaded._state.adding is False and loaded._state.db == connection.alias
    assert first_instance(Assignment, sql, [assignment.pk + 1000]) is None


def test_a_query_missing_columns_is_refused(make_task, make_user):
    task = make_task(n=2)
    Assignment.objects.create(
        task=task, annotator=make_user(), leased_at=timezone.now(), expires_at=timezone.now()
    )
    with pytest.raises(ValueError, match="every column"):
        first_instance(Assignment, f"SELECT id FROM {Assignment._meta.db_table}", [])


def test_columns_beyond_the_models_become_attributes(make_task, make_user):
    task = make_task(n=2)
    assignment = Assignment.objects.create(
        task=task, annotator=make_user(), leased_at=timezone.now(), expires_at=timezone.now()
    )
    sql = f"SELECT *, id * 2 AS doubled FROM {Assignment._meta.db_table} WHERE id = %s"
    loaded = first_instance(Assignment, sql, [assignment.pk])
    assert loaded.pk == assignment.pk and loaded.doubled == 2 * assignment.pk
