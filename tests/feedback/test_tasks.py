"""create_task and the other creation services refuse bad shapes with clear messages."""

import pytest

from feedback import services
from feedback.errors import ServiceError
from feedback.models import AnnotationTask

pytestmark = pytest.mark.django_db


def completions(project, n, text="Q?"):
    prompt = services.create_prompt(project_id=project.pk, text=text)
    return prompt, [
        services.create_completion(prompt_id=prompt.pk, text=f"a{i}").pk for i in range(n)
    ]


def test_pairwise_tasks_show_exactly_two(project):
    prompt, ids = completions(project, 3)
    with pytest.raises(ServiceError, match="exactly 2"):
        services.create_task(prompt_id=prompt.pk, completion_ids=ids)
    assert AnnotationTask.objects.count() == 0


def test_completions_must_answer_the_prompt(project):
    prompt, ids = completions(project, 1)
    _, other_ids = completions(project, 1, text="Another?")
    with pytest.raises(ServiceError, match="not answers"):
        services.create_task(prompt_id=prompt.pk, completion_ids=ids + other_ids)


def test_mode_must_be_enabled(db):
    pairwise_only = services.create_project(name="P", modes=("pairwise",))
    prompt, ids = completions(pairwise_only, 3)
    with pytest.raises(ServiceError, match="does not enable 'ranking'"):
        services.create_task(prompt_id=prompt.pk, completion_ids=ids, mode="ranking")


def test_task_defaults_to_project_overlap(db):
    project = services.create_project(name="P", overlap=3)
    prompt, ids = completions(project, 2)
    assert services.create_task(prompt_id=prompt.pk, completion_ids=ids).judgments_wanted == 3


def test_chat_prompts_are_validated_and_deduplicated(project):
    chat = [{"role": "user", "content": "hi"}]
    first = services.create_prompt(project_id=project.pk, messages=chat)
    assert services.create_prompt(project_id=project.pk, messages=chat).pk == first.pk
    with pytest.raises(ServiceError, match="role"):
        services.create_prompt(project_id=project.pk, messages=[{"role": "robot", "content": "x"}])
    with pytest.raises(ServiceError, match="needs text"):
        services.create_prompt(project_id=project.pk, text="   ")


def test_project_and_version_names_are_unique(project):
    with pytest.raises(ServiceError, match="exists already"):
        services.create_project(name=project.name)
    services.create_model_version(project_id=project.pk, name="v1")
    with pytest.raises(ServiceError, match="exists already"):
        services.create_model_version(project_id=project.pk, name="v1")


def test_nul_characters_in_model_output_are_stored_as_replacement_characters(project):
    prompt = services.create_prompt(project_id=project.pk, text="Q?")
    completion = services.create_completion(prompt_id=prompt.pk, text="bro\x00ken")
    completion.refresh_from_db()
    assert completion.text == "bro\ufffdken"
