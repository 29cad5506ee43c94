"""An admin deletes a project from its Settings page: the name typed wrong keeps it, typed right
deletes it and the home page says what went."""

import pytest
from playwright.sync_api import expect

from feedback import services
from feedback.models import Project
from tests.browser.conftest import sign_in, snap

pytestmark = [pytest.mark.browser]


def test_an_admin_deletes_a_project_by_typing_its_name(page, transactional_db, django_user_model):
    project = services.create_project(name="Scratch")
    kept = services.create_project(name="Kept")
    lead = django_user_model.objects.create_user("lead", password="pw")
    for each in (project, kept):
        services.add_member(project_id=each.pk, user_id=lead.pk, role="admin")
    prompt = services.create_prompt(project_id=project.pk, text="What is 2 + 2?")
    services.create_completion(prompt_id=prompt.pk, text="4")

    sign_in(page, "lead")
    page.goto(f"/insights/projects/{project.pk}/settings/")
    confirm = page.get_by_label("Type the project's name to confirm")
    confirm.fill("scratch")
    page.get_by_role("button", name="Delete the project").click()
    expect(page.get_by_role("alert")).to_contain_text("it does not match; type 'Scratch' exactly")
    snap(page, "project-deletion-refused")
    assert Project.objects.filter(pk=project.pk).exists()

    page.get_by_label("Type the project's name to confirm").fill("Scratch")
    page.get_by_role("button", name="Delete the project").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Project 'Scratch' deleted with 1 prompt, 1 output."
    )
    expect(page.get_by_role("heading", name="Kept")).to_be_visible()
    expect(page.get_by_role("heading", name="Scratch")).to_have_count(0)
    assert not Project.objects.filter(pk=project.pk).exists()
