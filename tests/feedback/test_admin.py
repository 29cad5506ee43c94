"""The Django admin's actions: tasks over the selected prompts' outputs, per project; revoking
invitation links."""

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
        "Pairwise only: 1 pairwise tasks created over 1 prompts; 0 were there already; "
        "0 prompts have fewer than two outputs.",
        "Test project: 3 pairwise tasks created over 1 prompts; 0 were there already; "
        "1 prompts have fewer than two outputs.",
    ]
    assert AnnotationTask.objects.filter(prompt=three).count() == 3
    assert not AnnotationTask.objects.filter(prompt=unselected).exists()

    said = act(client, "ranking_tasks", [three, elsewhere])
    assert any(m.startswith("Pairwise only: Project 'Pairwise only' does not enable") for m in said)
    assert any(m.startswith("Test project: 1 ranking tasks created") for m in said)
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
