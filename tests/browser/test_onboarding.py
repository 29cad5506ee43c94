"""A team forms in the browser: an admin makes an invitation link, a newcomer opens it in their own
browser, makes an account and judges; the admin then finds the prompt and its judgment in the
Prompts tab."""

import pytest
from playwright.sync_api import expect

from feedback import services
from tests.browser.conftest import DESKTOP, sign_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_newcomer_joins_by_link_and_their_judgment_shows_on_the_prompt_page(
    browser, page, live_server, transactional_db, django_user_model
):
    project = services.create_project(name="Helpful answers")
    lead = django_user_model.objects.create_user("lead", password="pw")
    services.add_member(project_id=project.pk, user_id=lead.pk, role="admin")
    prompt = services.create_prompt(project_id=project.pk, text="What is 2 + 2?")
    answers = [services.create_completion(prompt_id=prompt.pk, text=t) for t in ("4", "5")]
    services.create_task(
        prompt_id=prompt.pk, completion_ids=[a.pk for a in answers], mode="pairwise"
    )

    sign_in(page, "lead")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("button", name="Make a link").click()
    link = page.get_by_label("The new invitation link").input_value()
    assert link.startswith(f"{live_server.url}/join/")
    snap(page, "invitation-link")

    newcomer = browser.new_context(viewport=DESKTOP, reduced_motion="reduce").new_page()
    newcomer.set_default_timeout(8000)
    newcomer.goto(link)
    expect(newcomer.get_by_role("heading", name="Join Helpful answers")).to_be_visible()
    newcomer.get_by_label("Choose a username").fill("ada")
    newcomer.get_by_label("Password", exact=True).fill("a long and rare passphrase")
    newcomer.get_by_label("Password again").fill("a long and rare passphrase")
    newcomer.get_by_role("button", name="Make my account and join").click()
    expect(newcomer.get_by_role("status")).to_contain_text(
        "You are an annotator in Helpful answers."
    )
    newcomer.get_by_role("link", name="Start annotating").click()
    newcomer.wait_for_url(f"**/projects/{project.pk}/work/")
    newcomer.wait_for_load_state("load")
    newcomer.keyboard.press("1")
    newcomer.keyboard.press("Enter")
    expect(newcomer.get_by_role("heading", name="All done for now")).to_be_visible()
    newcomer.context.close()

    page.reload()
    expect(page.get_by_label("Role of ada")).to_have_value("annotator")
    page.get_by_role("link", name="Prompts", exact=True).click()
    page.get_by_role("searchbox", name="Search").fill("2 + 2")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="What is 2 + 2?").click()
    tasks = page.get_by_role("region", name="Tasks")
    expect(tasks.get_by_role("row").nth(1)).to_contain_text("1 of 1")
    snap(page, "prompt-page", tablet=True)
