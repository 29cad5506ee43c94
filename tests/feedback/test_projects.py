"""Changing a project after it is made: settings, who works on it, and its prompt sets."""

import hashlib
import json

import pytest

from feedback import services
from feedback.errors import ServiceError
from feedback.models import Membership, ModelVersion, Project, Role
from feedback.services.imports import import_jsonl
from feedback.services.projects import (
    canonical_messages,
    change_member_role,
    create_member_account,
    create_prompt_set,
    delete_model_version,
    prompt_content_hash,
    remove_member,
    rename_model_version,
    update_project,
)

pytestmark = pytest.mark.django_db


def test_settings_change_and_modes_in_use_stay_on(project, make_task):
    update_project(
        project_id=project.pk, guidelines="# Be kind", modes=("pairwise", "rating"), overlap=3
    )
    project.refresh_from_db()
    assert (project.guidelines, project.enabled_modes, project.overlap) == (
        "# Be kind",
        ["pairwise", "rating"],
        3,
    )
    make_task(n=3, mode="rating")
    cases = [
        (dict(modes=("pairwise",), overlap=1), "1 open rating task remains"),
        (dict(modes=(), overlap=1), "at least one"),
        (dict(modes=("pairwise", "vibes"), overlap=1), "at least one"),
        (dict(modes=("pairwise", "rating"), overlap=0), "1 to 100"),
    ]
    for arguments, message in cases:
        with pytest.raises(ServiceError, match=message):
            update_project(project_id=project.pk, guidelines="changed", **arguments)
    project.refresh_from_db()
    assert (project.guidelines, project.overlap) == ("# Be kind", 3)
    with pytest.raises(ServiceError, match="No project"):
        update_project(project_id=10_000, guidelines="", modes=("pairwise",), overlap=1)


def test_the_last_admin_cannot_be_demoted_or_removed(project, make_member, make_user):
    first = make_member(role=Role.ADMIN)
    annotator = make_member(role=Role.ANNOTATOR)
    for attempt in (
        lambda: change_member_role(project_id=project.pk, user_id=first.pk, role=Role.REVIEWER),
        lambda: remove_member(project_id=project.pk, user_id=first.pk),
    ):
        with pytest.raises(ServiceError, match="last admin"):
            attempt()
    assert Membership.objects.get(user=first).role == Role.ADMIN

    change_member_role(project_id=project.pk, user_id=annotator.pk, role=Role.ADMIN)
    change_member_role(project_id=project.pk, user_id=first.pk, role=Role.REVIEWER)
    remove_member(project_id=project.pk, user_id=first.pk)
    assert dict(project.memberships.values_list("user_id", "role")) == {annotator.pk: Role.ADMIN}

    stranger = make_user()
    with pytest.raises(ServiceError, match="not a member"):
        remove_member(project_id=project.pk, user_id=stranger.pk)
    with pytest.raises(ServiceError, match="Role must be one of"):
        change_member_role(project_id=project.pk, user_id=annotator.pk, role="owner")
    # Adding an existing member again changes their role, under the same rule.
    with pytest.raises(ServiceError, match="last admin"):
        services.add_member(project_id=project.pk, user_id=annotator.pk, role=Role.REVIEWER)
    services.add_member(project_id=project.pk, user_id=stranger.pk, role=Role.ADMIN)
    services.add_member(project_id=project.pk, user_id=annotator.pk, role=Role.REVIEWER)
    assert dict(Project.objects.get(pk=project.pk).memberships.values_list("user_id", "role")) == {
        annotator.pk: Role.REVIEWER,
        stranger.pk: Role.ADMIN,
    }


def test_prompt_sets_come_from_ids_an_import_or_a_split(project):
    batch_lines = [json.dumps({"prompt": f"imported {n}"}) for n in range(3)]
    batch = import_jsonl(
        project_id=project.pk, user_id=None, lines=batch_lines, format="prompts"
    ).batch
    train = services.create_prompt(project_id=project.pk, text="made by hand")
    held = services.create_prompt(project_id=project.pk, text="held", split="held_out")
    other = services.create_project(name="Other")
    foreign = services.create_prompt(project_id=other.pk, text="elsewhere")

    def texts(prompt_set):
        return sorted(prompt_set.prompts.values_list("text", flat=True))

    everything = create_prompt_set(project_id=project.pk, name="all training")
    assert texts(everything) == ["imported 0", "imported 1", "imported 2", "made by hand"]
    imported = create_prompt_set(project_id=project.pk, name="import", import_batch_id=batch.pk)
    assert texts(imported) == ["imported 0", "imported 1", "imported 2"]
    both = create_prompt_set(project_id=project.pk, name="both", split=None)
    assert len(texts(both)) == 5
    chosen = create_prompt_set(project_id=project.pk, name="two", prompt_ids=[train.pk, held.pk])
    assert texts(chosen) == ["held", "made by hand"]

    cases = [
        (dict(name="all training"), "exists already"),
        (dict(name=" "), "Name the prompt set"),
        (dict(name="x", prompt_ids=[train.pk, foreign.pk]), rf"Prompts \[{foreign.pk}\] are not"),
        (dict(name="x", import_batch_id=10_000), "Import 10000 is not one of this project's"),
        (dict(name="x", import_batch_id=batch.pk, split="held_out"), "No prompts match"),
        (dict(name="x", split="test"), "Split must be one of"),
    ]
    for arguments, message in cases:
        with pytest.raises(ServiceError, match=message):
            create_prompt_set(project_id=project.pk, **arguments)
    assert project.prompt_sets.count() == 4


def test_an_account_made_for_a_project_is_all_or_nothing(project, django_user_model):
    made = create_member_account(project_id=project.pk, username=" ada ", role=Role.REVIEWER)
    assert (made.membership.user.username, made.membership.role) == ("ada", Role.REVIEWER)
    assert made.membership.user.check_password(made.password) and len(made.password) >= 16
    with pytest.raises(ServiceError, match="Role must be one of"):
        create_member_account(project_id=project.pk, username="bob", role="owner")
    with pytest.raises(ServiceError, match="exists already"):
        create_member_account(project_id=project.pk, username="ADA", role=Role.ANNOTATOR)
    assert list(django_user_model.objects.values_list("username", flat=True)) == ["ada"]


def test_a_removed_member_loses_the_task_they_held(project, make_member, make_task):
    task = make_task()
    leaving, staying = make_member(), make_member()
    assert services.next_task_for(annotator_id=leaving.pk, project_id=project.pk).task_id == task.pk
    remove_member(project_id=project.pk, user_id=leaving.pk)
    task.refresh_from_db()
    assert (task.slots_taken, task.assignments.count()) == (0, 0)
    with pytest.raises(ServiceError, match="not assigned to you"):
        services.submit_judgment(
            annotator_id=leaving.pk,
            task_id=task.pk,
            data=services.JudgmentInput(kind="pairwise", choice="a", idempotency_key="k"),
        )
    assert services.next_task_for(annotator_id=staying.pk, project_id=project.pk).task_id == task.pk


def test_a_lease_answered_while_its_holder_is_removed_keeps_its_slot(
    project, make_member, make_task, monkeypatch
):
    from feedback.models import AnnotationTask

    task = make_task(judgments_wanted=3)
    leaving = make_member()
    services.next_task_for(annotator_id=leaving.pk, project_id=project.pk)
    lock = AnnotationTask.objects.select_for_update

    def answered_first(*args, **kwargs):  # the answer commits before the removal's locks
        monkeypatch.setattr(AnnotationTask.objects, "select_for_update", lock)
        services.submit_judgment(
            annotator_id=leaving.pk,
            task_id=task.pk,
            data=services.JudgmentInput(kind="pairwise", choice="a", idempotency_key="k"),
        )
        return lock(*args, **kwargs)

    monkeypatch.setattr(AnnotationTask.objects, "select_for_update", answered_first)
    remove_member(project_id=project.pk, user_id=leaving.pk)
    task.refresh_from_db()
    assert (task.slots_taken, task.judgment_count, task.assignments.count()) == (1, 1, 1)


def test_chat_prompt_hashes_keep_the_json_dumps_spelling_stored_rows_have():
    tricky = [
        "",
        'say "hi"',
        "back\\slash",
        "line\nbreak\ttab\x00\x1f",
        "é中😀\u2028",
        "</script>{}",
    ]
    for index, content in enumerate(tricky):
        messages = [
            {"role": "system", "content": content},
            {"role": "user", "content": tricky[-1 - index]},
        ]
        spelled = json.dumps(messages, ensure_ascii=False, sort_keys=True)
        assert canonical_messages(messages) == spelled
        assert (
            prompt_content_hash("", messages) == hashlib.sha256(spelled.encode("utf-8")).hexdigest()
        )


def test_a_model_version_is_deleted_only_while_nothing_uses_it(project):
    typo = services.create_model_version(project_id=project.pk, name="gtp-4")
    assert delete_model_version(project_id=project.pk, version_id=typo.pk) == "gtp-4"
    assert not ModelVersion.objects.filter(pk=typo.pk).exists()

    answering = services.create_model_version(project_id=project.pk, name="answering")
    prompt = services.create_prompt(project_id=project.pk, text="Q")
    services.create_completion(prompt_id=prompt.pk, text="A", model_version_id=answering.pk)
    services.create_model_version(project_id=project.pk, name="child", parent_id=answering.pk)
    with pytest.raises(ServiceError) as refused:
        delete_model_version(project_id=project.pk, version_id=answering.pk)
    assert refused.value.code == "conflict"
    assert refused.value.message == (
        "Model version 'answering' is in use (1 child version, 1 output); nothing was deleted. "
        "Delete the import that brought its outputs first."
    )
    assert ModelVersion.objects.filter(pk=answering.pk).exists()

    other = services.create_project(name="Other")
    for project_id, version_id in ((other.pk, answering.pk), (project.pk, typo.pk)):
        with pytest.raises(ServiceError, match="No such model version") as missing:
            delete_model_version(project_id=project_id, version_id=version_id)
        assert missing.value.code == "not_found"


def test_a_renamed_model_version_keeps_its_outputs_and_names_stay_unique(project):
    mistyped = services.create_model_version(project_id=project.pk, name="gtp-4")
    services.create_model_version(project_id=project.pk, name="claude")
    prompt = services.create_prompt(project_id=project.pk, text="Q")
    output = services.create_completion(prompt_id=prompt.pk, text="A", model_version_id=mistyped.pk)
    renamed = rename_model_version(project_id=project.pk, version_id=mistyped.pk, name=" gpt-4 ")
    assert renamed.name == "gpt-4" and ModelVersion.objects.get(pk=mistyped.pk).name == "gpt-4"
    output.refresh_from_db()
    assert output.model_version_id == mistyped.pk

    for name, message in (
        ("claude", "A model version named 'claude' exists already in this project."),
        ("  ", "A model version needs a name."),
        ("x" * 201, "A model version's name is at most 200 characters."),
        ("a\x00b", "A model version's name cannot contain a NUL character."),
    ):
        with pytest.raises(ServiceError) as refused:
            rename_model_version(project_id=project.pk, version_id=mistyped.pk, name=name)
        assert refused.value.message == message
    assert ModelVersion.objects.get(pk=mistyped.pk).name == "gpt-4"
    with pytest.raises(ServiceError, match="No such model version"):
        other = services.create_project(name="Other")
        rename_model_version(project_id=other.pk, version_id=mistyped.pk, name="y")
    with pytest.raises(ServiceError, match="at most 200 characters"):
        services.create_model_version(project_id=project.pk, name="y" * 201)
