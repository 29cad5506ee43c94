"""Right-to-left outputs (Arabic, Hebrew) read right to left beside left-to-right ones."""

import pytest
from playwright.sync_api import expect

from feedback import services
from tests.annotations import scenarios
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARABIC = "مرحبا، هذه إجابة قصيرة."
MIXED = f"An English line first.\n\n{ARABIC}\n\n```python\nprint('ltr')\n```"

# Where each paragraph's text sits in its box: "right" flush against the right edge, else "left".
SIDES = """(box) => [...box.querySelectorAll("p, pre")].map((block) => {
  const range = document.createRange();
  range.selectNodeContents(block);
  const text = range.getBoundingClientRect(), edge = block.getBoundingClientRect();
  return [block.innerText.trim().slice(0, 12), edge.right - text.right < 2 ? "right" : "left"];
})"""


def test_right_to_left_paragraphs_read_right_to_left(
    page, live_server, transactional_db, django_user_model
):
    project = scenarios.make_project(modes=("pairwise",))
    user = django_user_model.objects.create_user("ann", password="pw")
    services.add_member(project_id=project.pk, user_id=user.pk)
    scenarios.make_task(project, [ARABIC, MIXED], text="سؤال؟")
    sign_in(page, "ann")
    page.goto(f"/projects/{project.pk}/work/")
    expect(page.locator("#task .output")).to_have_count(2)

    sides = {}
    for box in page.locator("#task .rendered").all():
        sides.update(dict(box.evaluate(SIDES)))
    assert sides["سؤال؟"] == "right"  # the prompt
    assert sides[ARABIC[:12]] == "right"
    assert sides["An English l"] == "left"
    assert sides["print('ltr')"] == "left"
    # What the annotator types takes the direction of its first letter too.
    assert page.locator("#rationale").get_attribute("dir") == "auto"


def test_right_to_left_snippets_run_right_to_left(
    page, live_server, transactional_db, django_user_model
):
    project = scenarios.make_project(modes=("ranking",))
    user = django_user_model.objects.create_user("ann", password="pw")
    services.add_member(project_id=project.pk, user_id=user.pk)
    scenarios.make_task(
        project, [ARABIC, "An English answer.", "Another one."], text="Q?", mode="ranking"
    )
    sign_in(page, "ann")
    page.goto(f"/projects/{project.pk}/work/")
    chips = page.locator("#task .chip-text")
    expect(chips).to_have_count(3)
    directions = chips.evaluate_all(
        "cs => cs.map(c => [c.textContent.trim(), getComputedStyle(c).direction])"
    )
    assert dict(directions) == {ARABIC: "rtl", "An English answer.": "ltr", "Another one.": "ltr"}
