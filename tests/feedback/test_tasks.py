"""create_task and the other creation services refuse bad shapes with clear messages."""

import pytest

from feedback import services
from feedback.errors import ServiceError
from feedback.models import AnnotationTask
from feedback.services.tasks import delete_untouched_tasks

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


# ---- create_tasks_from_completions -------------------------------------------------------


def outputs(project, text, versions):
    """A prompt answered once by each of `versions` (model versions, or None for unattributed)."""
    prompt = services.create_prompt(project_id=project.pk, text=text)
    return prompt, [
        services.create_completion(
            prompt_id=prompt.pk,
            text=f"{text} by {v.name if v else 'someone'}",
            model_version_id=v.pk if v else None,
        ).pk
        for v in versions
    ]


def shown(task) -> frozenset[int]:
    return frozenset(task.items.values_list("completion_id", flat=True))


def versions(project, *names):
    return [
        services.create_model_version(project_id=project.pk, name=name, base_model="m")
        for name in names
    ]


def test_every_pair_of_a_prompts_outputs_becomes_a_pairwise_task_once(db):
    project = services.create_project(name="Outputs", overlap=2)
    a, b, c = versions(project, "a", "b", "c")
    first, ids = outputs(project, "Q1", [a, b, c])
    lonely, _ = outputs(project, "Q2", [a])
    result = services.create_tasks_from_completions(project_id=project.pk, mode="pairwise")
    assert result.as_json() == {
        "created": 3,
        "prompts": 1,
        "already_there": 0,
        "too_few_outputs": 1,
    }
    tasks = list(AnnotationTask.objects.filter(prompt=first))
    assert {shown(t) for t in tasks} == {
        frozenset(p) for p in ((ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2]))
    }
    assert {(t.mode, t.judgments_wanted, t.status) for t in tasks} == {("pairwise", 2, "open")}
    assert not AnnotationTask.objects.filter(prompt=lonely).exists()

    # Again: nothing new. After one more output: only the pairs with it.
    again = services.create_tasks_from_completions(project_id=project.pk, mode="pairwise")
    assert (again.created, again.already_there) == (0, 3)
    (d,) = versions(project, "d")
    newest = services.create_completion(prompt_id=first.pk, text="Q1 by d", model_version_id=d.pk)
    more = services.create_tasks_from_completions(project_id=project.pk, mode="pairwise")
    assert (more.created, more.already_there) == (3, 3)
    assert all(newest.pk in shown(t) for t in AnnotationTask.objects.order_by("-pk")[:3])


def test_a_ranking_task_shows_all_outputs_of_the_chosen_versions_and_prompts(db, make_user):
    project = services.create_project(name="Ranked", modes=("pairwise", "ranking"))
    a, b, c = versions(project, "a", "b", "c")
    first, ids = outputs(project, "Q1", [a, b, c, None])
    second, _ = outputs(project, "Q2", [a, b, c])
    result = services.create_tasks_from_completions(
        project_id=project.pk,
        mode="ranking",
        prompt_ids=[first.pk],
        model_version_ids=[a.pk, c.pk],
        judgments_wanted=3,
    )
    assert (result.created, result.prompts) == (1, 1)
    task = AnnotationTask.objects.get()
    assert (task.prompt, task.mode, task.judgments_wanted) == (first, "ranking", 3)
    assert list(task.items.order_by("position").values_list("completion_id", flat=True)) == [
        ids[0],
        ids[2],
    ]
    # The new tasks are served to annotators like any other.
    annotator = make_user()
    services.add_member(project_id=project.pk, user_id=annotator.pk)
    lease = services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
    assert lease is not None and lease.task_id == task.pk


def test_refusals_name_the_problem_and_create_nothing(db, monkeypatch):
    project = services.create_project(name="Strict")
    other = services.create_project(name="Other")
    (a,) = versions(project, "a")
    (foreign_version,) = versions(other, "x")
    prompt, _ = outputs(project, "Q1", [a, None])
    foreign_prompt, _ = outputs(other, "Q", [None, None])
    crowded, _ = outputs(project, "Q2", [None] * 10)
    create = services.create_tasks_from_completions
    cases = [
        (dict(mode="ranking"), "does not enable 'ranking'"),
        (dict(mode="vibes"), "Unknown mode 'vibes'"),
        (
            dict(mode="pairwise", prompt_ids=[prompt.pk, foreign_prompt.pk]),
            rf"Prompts \[{foreign_prompt.pk}\] are not in this project",
        ),
        (
            dict(mode="pairwise", model_version_ids=[foreign_version.pk]),
            "Model versions .* are not in this project",
        ),
        (dict(mode="pairwise", judgments_wanted=0), "1 to 100 judgments"),
    ]
    for arguments, message in cases:
        with pytest.raises(ServiceError, match=message):
            create(project_id=project.pk, **arguments)
    # One prompt per batch: the first batch's tasks are written before the crowded prompt is
    # reached, and rolled back with the refusal.
    monkeypatch.setattr("feedback.services.tasks.PROMPTS_PER_BATCH", 1)
    with pytest.raises(ServiceError, match=rf"Prompts \[{crowded.pk}\] have more than 9 outputs"):
        create(project_id=project.pk, mode="pairwise")
    # More ids than PostgreSQL takes parameters in one statement: still a plain refusal.
    unknown = list(range(10**6, 10**6 + 70_000))
    with pytest.raises(ServiceError, match=r"Prompts \[1000000, .* \.\.\. are not in"):
        create(project_id=project.pk, mode="pairwise", prompt_ids=[prompt.pk, *unknown])
    with pytest.raises(ServiceError, match="No project"):
        create(project_id=10_000, mode="pairwise")
    assert not AnnotationTask.objects.exists()
    # Naming the versions leaves the crowded prompt's unattributed outputs out.
    assert (
        create(project_id=project.pk, mode="pairwise", model_version_ids=[a.pk]).too_few_outputs
        == 2
    )


def test_only_untouched_open_tasks_are_deleted(project, make_member, make_task):
    make_task(), make_task(n=3, mode="ranking")  # untouched
    judged, skipped, leased = make_task(), make_task(), make_task()
    gold = make_task()
    AnnotationTask.objects.filter(pk=gold.pk).update(is_gold=True, gold_answer={"choice": "a"})
    # Decided before anyone judged it (made gold, then unmarked): the reviewer's answer stays.
    decided = make_task()
    reviewer = make_member(role="reviewer")
    services.set_gold_answer(reviewer_id=reviewer.pk, task_id=decided.pk, choice="b")
    services.mark_gold(reviewer_id=reviewer.pk, task_id=decided.pk, is_gold=False)
    AnnotationTask.objects.filter(pk=decided.pk).update(status="open")
    annotator, other, third = make_member(), make_member(), make_member()
    for user, task in ((annotator, judged), (other, skipped), (third, leased)):
        AnnotationTask.objects.exclude(pk=task.pk).update(priority=-1)
        AnnotationTask.objects.filter(pk=task.pk).update(priority=1)
        assert (
            services.next_task_for(annotator_id=user.pk, project_id=project.pk).task_id == task.pk
        )
    services.submit_judgment(
        annotator_id=annotator.pk,
        task_id=judged.pk,
        data=services.JudgmentInput(kind="pairwise", choice="a", idempotency_key="k"),
    )
    services.skip_task(annotator_id=other.pk, task_id=skipped.pk, reason="unsafe")

    with pytest.raises(ServiceError, match="Unknown mode"):
        delete_untouched_tasks(project_id=project.pk, mode="vibes")
    assert delete_untouched_tasks(project_id=project.pk, mode="ranking") == 1
    # The leased one had not been answered: it goes, and its annotator gets another task.
    assert delete_untouched_tasks(project_id=project.pk) == 2
    assert set(AnnotationTask.objects.values_list("pk", flat=True)) == {
        judged.pk,
        skipped.pk,
        gold.pk,
        decided.pk,
    }
    with pytest.raises(ServiceError, match=f"No task with id {leased.pk}"):
        services.submit_judgment(
            annotator_id=third.pk,
            task_id=leased.pk,
            data=services.JudgmentInput(kind="pairwise", choice="a", idempotency_key="k3"),
        )
