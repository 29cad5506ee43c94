"""The Django admin's actions: tasks over the selected prompts' outputs, per project; revoking
invitation links; deleting imports with what they wrote."""

import pytest

from feedback import services
from feedback.models import AnnotationTask, Invitation
from feedback.services.invitations import create_invitation

pytestmark = pytest.mark.django_db
PROMPTS = "/admin/feedback/prompt/"


def answered(project, text: str, n: int):
    prompt = services.create_prompt(project_id=project.pk, text=text)
    for i in range(n):
        services.create_completion(prompt_id=prompt.pk, text=f"{text} answer {i}")
    return prompt


def act(client, action: str, prompts) -> list[str]:
    response = client.post(
        PROMPTS, {"action": action, "_selected_action": [p.pk for p in prompts]}, follow=True
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_prompt_actions_open_tasks_per_project_and_report_refusals(client, project, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    pairwise_only = services.create_project(name="Pairwise only")
    three = answered(project, "Q1", 3)
    one = answered(project, "Q2", 1)
    elsewhere = answered(pairwise_only, "Q3", 2)
    unselected = answered(project, "Q4", 2)

    said = act(client, "pairwise_tasks", [three, one, elsewhere])
    assert sorted(said) == [
        "Pairwise only: 1 pairwise task created over 1 prompt.",
        "Test project: 3 pairwise tasks created over 1 prompt; 1 prompt has fewer than two "
        "outputs.",
    ]
    assert AnnotationTask.objects.filter(prompt=three).count() == 3
    assert not AnnotationTask.objects.filter(prompt=unselected).exists()

    said = act(client, "ranking_tasks", [three, elsewhere])
    assert any(m.startswith("Pairwise only: Project 'Pairwise only' does not enable") for m in said)
    assert any(m.startswith("Test project: 1 ranking task created") for m in said)
    assert not AnnotationTask.objects.filter(prompt=elsewhere, mode="ranking").exists()


def test_staff_see_invitation_links_and_revoke_them_but_make_them_on_the_settings_tab(
    client, project, make_user
):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    links = [
        create_invitation(project_id=project.pk, role=role, created_by_id=None).invitation
        for role in ("annotator", "reviewer")
    ]
    listing = client.get("/admin/feedback/invitation/")
    assert listing.status_code == 200 and "Add invitation" not in listing.content.decode()
    assert client.get("/admin/feedback/invitation/add/").status_code == 403
    response = client.post(
        "/admin/feedback/invitation/",
        {"action": "revoke", "_selected_action": [links[0].pk]},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == ["1 invitation links revoked."]
    assert [i.revoked_at is not None for i in Invitation.objects.order_by("pk")] == [True, False]


def test_deleting_imports_in_the_admin_deletes_what_they_wrote(client, project, make_user):
    import json

    from feedback.models import ImportBatch, Prompt
    from feedback.services.imports import import_jsonl

    client.force_login(make_user(is_staff=True, is_superuser=True))

    def imported(*texts):
        lines = [
            json.dumps({"prompt": t, "completion": f"{t} by {m}", "model": m})
            for t in texts
            for m in ("m1", "m2")
        ]
        return import_jsonl(project_id=project.pk, user_id=None, lines=lines).batch

    first = imported("Q1", "Q2")
    services.create_tasks_from_completions(project_id=project.pk, mode="pairwise")
    AnnotationTask.objects.filter(prompt__text="Q1").delete()  # Q2's task holds on
    second, third = imported("Q3"), imported("Q4")

    batches = "/admin/feedback/importbatch/"
    page = client.get(batches).content.decode()
    assert 'value="delete_with_rows"' in page and 'value="delete_selected"' not in page
    response = client.post(
        batches,
        {"action": "delete_with_rows", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    said = [str(m) for m in response.context["messages"]]
    assert said == [
        f"Import #{first.pk}: 1 task shows this import's outputs; nothing was deleted. Delete "
        "those tasks first (untouched ones go with 'Delete untouched tasks'), or keep the import.",
        "Import #" + str(second.pk) + " deleted: 1 prompt, 2 outputs.",
    ]
    # The change page's Delete button does the same.
    response = client.post(f"{batches}{third.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert list(ImportBatch.objects.all()) == [first]
    assert sorted(Prompt.objects.values_list("text", flat=True)) == ["Q1", "Q2"]
    refused = client.post(f"{batches}{first.pk}/delete/", {"post": "yes"}, follow=True)
    assert "1 task shows this import" in refused.content.decode()
    assert ImportBatch.objects.filter(pk=first.pk).exists()
    # An output a task shows cannot go on its own...
    from django.db.models import RestrictedError

    from feedback.models import Completion

    with pytest.raises(RestrictedError):
        Completion.objects.get(text="Q2 by m1").delete()
    # ...but a project still goes with everything in it: its imports, and outputs that tasks
    # show (the tasks go too).
    client.post(f"/admin/feedback/project/{project.pk}/delete/", {"post": "yes"})
    assert not ImportBatch.objects.exists() and not Prompt.objects.exists()
    assert not AnnotationTask.objects.exists()
