"""The demo loader can run again safely."""

import pytest
from django.core.management import call_command

from feedback.models import AnnotationTask, Project, Prompt
from feedback.services import next_task_for

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo")
    counts = (Project.objects.count(), Prompt.objects.count(), AnnotationTask.objects.count())
    call_command("seed_demo")
    assert (Project.objects.count(), Prompt.objects.count(), AnnotationTask.objects.count()) == counts
    assert counts[2] >= 20
    out = capsys.readouterr().out
    assert "annotator" in out and "arbiter-annotator" in out


def test_demo_annotator_has_work(django_user_model):
    call_command("seed_demo")
    annotator = django_user_model.objects.get(username="annotator")
    project = Project.objects.get()
    assert next_task_for(annotator_id=annotator.pk, project_id=project.pk) is not None
