"""Id reservation for bulk writes (feedback/services/bulk.py): one call reserves ids for several
tables, and no row written later through the ORM takes one of them."""

import pytest
from django.db import connection, transaction

from feedback import services
from feedback.models import Completion, PreferencePair, Prompt
from feedback.services.bulk import reserve_ids, sequence_of


def test_one_call_reserves_fresh_ids_for_each_table(project):
    existing = services.create_prompt(project_id=project.pk, text="written before")
    with transaction.atomic():
        ids = reserve_ids({Prompt: 3, Completion: 5, PreferencePair: 0})
    assert [len(ids[model]) for model in (Prompt, Completion, PreferencePair)] == [3, 5, 0]
    assert len(set(ids[Prompt])) == 3 and len(set(ids[Completion])) == 5
    assert min(ids[Prompt]) > existing.pk
    later = services.create_prompt(project_id=project.pk, text="written after")
    assert later.pk > max(ids[Prompt])
    answer = services.create_completion(prompt_id=later.pk, text="an answer")
    assert answer.pk not in ids[Completion]


def test_ids_that_do_not_form_one_run_are_taken_one_by_one(project):
    """Someone else's ids between ours leave holes in the run; a sequence that counts in twos
    does the same, deterministically."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite numbers from the table's largest id under its write lock: one run")
    sequence = sequence_of(Completion._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"ALTER SEQUENCE {sequence} INCREMENT BY 2")
        ids = reserve_ids({Completion: 4, Prompt: 2})[Completion]
        cursor.execute(f"ALTER SEQUENCE {sequence} INCREMENT BY 1")
    assert len(set(ids)) == 4
    assert [b - a for a, b in zip(ids, ids[1:], strict=False)] == [2, 2, 2]
    prompt = services.create_prompt(project_id=project.pk, text="a prompt")
    answer = services.create_completion(prompt_id=prompt.pk, text="an answer")
    assert answer.pk > max(ids)
