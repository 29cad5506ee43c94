"""Rating by keys, ranking with ratings, differences, guidelines and the shortcut overlay."""

import pytest
from playwright.sync_api import expect

from feedback import services
from feedback.models import Judgment
from tests.annotations import scenarios
from tests.browser.conftest import sign_in, snap
from tests.browser.test_annotator_flow import chip_ids, shown_order, wait_for_task

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_ratings_by_keys_and_beside_a_ranking(page, transactional_db, django_user_model):
    project = scenarios.make_project(modes=("pairwise", "ranking", "rating"))
    user = django_user_model.objects.create_user("rater", password="pw")
    services.add_member(project_id=project.pk, user_id=user.pk)
    near = scenarios.make_task(
        project,
        [
            "The meeting moved to Tuesday at 10:00 in room B.",
            "The meeting moved to Thursday at 10:00 in room B.",
        ],
        text="Summarise the email in one sentence.",
        priority=3,
    )
    rated = scenarios.make_task(
        project, scenarios.LISBON_ANSWERS, messages=scenarios.CHAT, mode="rating", priority=2
    )
    ranked = scenarios.make_task(
        project,
        ["Short.", "A longer answer.", "The longest answer here."],
        text="Answer briefly.",
        mode="ranking",
        priority=1,
    )

    sign_in(page, "rater")
    page.goto(f"/projects/{project.pk}/work/")
    wait_for_task(page, near)
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    snap(page, "help-overlay")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_hidden()
    page.keyboard.press("g")
    expect(page.locator("#guidelines .guidelines-body")).to_be_visible()
    page.keyboard.press("d")
    expect(page.locator("#task mark.diff").first).to_be_visible()
    expect(page.locator("#task mark.diff")).to_have_count(2)  # Tuesday / Thursday
    snap(page, "differences", tablet=True)
    page.keyboard.press("g")
    page.keyboard.press("4")  # both bad
    page.keyboard.press("Enter")

    wait_for_task(page, rated)
    rated_order = shown_order(page)
    page.keyboard.press("Enter")  # nothing rated yet: refused inline
    expect(page.locator("#task-errors")).to_contain_text("Rate every output")
    for key in ("5", "7", "2"):
        page.keyboard.press(key)
    snap(page, "rating", tablet=True)
    page.keyboard.press("Enter")

    wait_for_task(page, ranked)
    numbers = chip_ids(page)
    for key in ("3", "1", "2"):
        page.keyboard.press(key)
    for number, score in ((1, 3), (2, 2), (3, 6)):
        page.locator(f"label[for=rating-{numbers[number]}-{score}]").click()
    snap(page, "ranking-with-ratings", tablet=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
    snap(page, "done")

    judgments = {j.task_id: j for j in Judgment.objects.filter(annotator=user)}
    assert judgments[near.pk].choice == "both_bad"
    assert judgments[rated.pk].ratings == {
        str(rated_order[0]): 5,
        str(rated_order[1]): 7,
        str(rated_order[2]): 2,
    }
    assert judgments[rated.pk].shown_order == rated_order
    assert judgments[ranked.pk].ranking == [[numbers[3]], [numbers[1]], [numbers[2]]]
    assert judgments[ranked.pk].ratings == {
        str(numbers[1]): 3,
        str(numbers[2]): 2,
        str(numbers[3]): 6,
    }
