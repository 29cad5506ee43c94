"""Bring your own outputs, all in the browser: an admin imports two models' answers and makes
pairwise tasks, an annotator judges them by keyboard, the admin derives pairs and downloads them
in TRL's format."""

import json

import pytest
from playwright.sync_api import expect

from feedback import services
from feedback.models import Judgment, PreferencePair
from tests.browser.conftest import sign_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.slow]
QUESTIONS = ["What is 2 + 2?", "Name a primary colour.", "Is ice cold?"]


def test_imported_outputs_are_judged_and_come_back_as_a_dataset(
    page, transactional_db, django_user_model, tmp_path
):
    project = services.create_project(name="Two models")
    for name, role in (("lead", "admin"), ("ann", "annotator")):
        user = django_user_model.objects.create_user(name, password="pw")
        services.add_member(project_id=project.pk, user_id=user.pk, role=role)
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(
        "".join(
            json.dumps({"prompt": q, "completion": f"{model} answers: {q}", "model": model}) + "\n"
            for q in QUESTIONS
            for model in ("model-small", "model-large")
        )
    )

    sign_in(page, "lead")
    page.get_by_role("link", name="Imports & tasks").click()
    page.get_by_label("JSONL, CSV or Parquet file").set_input_files(outputs)
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(
        "Imported outputs.jsonl (completions, 6 lines)"
    )
    page.get_by_role("button", name="Create tasks").click()
    expect(page.get_by_role("status")).to_contain_text("3 pairwise tasks created over 3 prompts")
    snap(page, "imports-and-tasks", tablet=True)
    page.get_by_role("button", name="Sign out").click()

    # The annotator prefers the larger model, whichever side it is shown on.
    sign_in(page, "ann")
    page.get_by_role("link", name="Start annotating").click()
    page.wait_for_url(f"**/projects/{project.pk}/work/")
    page.wait_for_load_state("load")  # the key handlers are in place: no key press is lost
    for _ in QUESTIONS:
        first = page.locator("#task .output").first
        expect(first).to_be_visible()
        task_id = page.locator("#task").get_attribute("data-task-id")
        page.keyboard.press("1" if "model-large" in first.inner_text() else "2")
        page.keyboard.press("Enter")
        expect(page.locator(f'#task[data-task-id="{task_id}"]')).to_have_count(0)
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
    assert Judgment.objects.count() == 3
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, "lead")
    page.goto(f"/insights/projects/{project.pk}/data/")
    page.get_by_role("button", name="Derive pairs").click()
    expect(page.get_by_role("status")).to_contain_text("3 pairs (0 ties) from 3 judgments")
    with page.expect_download() as download:
        page.get_by_role("link", name="TRL JSONL").click()
    rows = [json.loads(line) for line in download.value.path().read_text().splitlines()]
    assert sorted(row["prompt"] for row in rows) == sorted(QUESTIONS)
    assert all(row["chosen"].startswith("model-large") for row in rows)
    assert all(row["rejected"].startswith("model-small") for row in rows)
    assert PreferencePair.objects.filter(policy="default").count() == 3
