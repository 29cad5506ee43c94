"""The demo loader can run again safely, and leaves both demo projects ready to use."""

from pathlib import Path

import pytest
from django.core.management import call_command

from feedback.demo import DEMO_PROJECT
from feedback.models import AnnotationTask, ModelVersion, Project, Prompt
from feedback.services import next_task_for
from training import demo as training_demo

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def prebuilt_tiny_base(monkeypatch, tiny_base):
    monkeypatch.setattr(training_demo, "tiny_base_path", lambda: Path(tiny_base))


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo")
    counts = (Project.objects.count(), Prompt.objects.count(), AnnotationTask.objects.count())
    call_command("seed_demo")
    assert (
        Project.objects.count(),
        Prompt.objects.count(),
        AnnotationTask.objects.count(),
    ) == counts
    assert counts[0] == 2 and counts[2] >= 20
    out = capsys.readouterr().out
    assert "annotator" in out and "arbiter-annotator" in out


def test_demo_annotator_has_work(django_user_model):
    call_command("seed_demo")
    annotator = django_user_model.objects.get(username="annotator")
    project = Project.objects.get(name=DEMO_PROJECT)
    assert next_task_for(annotator_id=annotator.pk, project_id=project.pk) is not None


def test_alignment_demo_has_a_local_policy_and_prompts(tiny_base):
    call_command("seed_demo")
    project = Project.objects.get(name=training_demo.ALIGNMENT_PROJECT)
    policy = ModelVersion.objects.get(project=project, name=training_demo.TINY_BASE_NAME)
    assert policy.base_model == tiny_base and (Path(tiny_base) / "config.json").exists()
    prompt_set = project.prompt_sets.get()
    assert prompt_set.prompts.filter(split="train").count() >= 16
    assert project.prompts.filter(split="held_out").exists()
