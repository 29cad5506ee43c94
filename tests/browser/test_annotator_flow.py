"""An annotator's session in a real browser: pairwise and ranking by keys, ranking by drag and
drop, a double-clicked submit and a skip; the database must hold exactly what was shown and chosen."""

import pytest
from playwright.sync_api import expect

from feedback import services
from feedback.models import Assignment, Judgment
from tests.annotations import scenarios
from tests.browser.conftest import sign_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def shown_order(page) -> list[int]:
    return page.locator("#task .output").evaluate_all(
        "cards => cards.map(card => Number(card.dataset.completionId))"
    )


def chip_ids(page) -> dict[int, int]:
    """Output number on screen -> completion id."""
    pairs = page.locator("#task .chip").evaluate_all(
        "chips => chips.map(c => [Number(c.dataset.number), Number(c.dataset.completionId)])"
    )
    return dict(pairs)


def wait_for_task(page, task) -> None:
    expect(page.locator(f'#task[data-task-id="{task.pk}"]')).to_be_visible()


def drag(page, source, x: float, y: float) -> None:
    box = source.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(x, y, steps=6)
    page.mouse.up()


def test_an_annotator_works_through_the_queue_by_keyboard_and_mouse(
    page, transactional_db, django_user_model
):
    project = scenarios.make_project()
    annotator = django_user_model.objects.create_user("ann", password="pw")
    services.add_member(project_id=project.pk, user_id=annotator.pk)
    make = scenarios.make_task
    pair = make(
        project,
        [scenarios.CODE_ANSWER, scenarios.SHORT_ANSWER],
        text="How do I reverse a list in **Python**?",
        priority=5,
    )
    by_keys = make(
        project, scenarios.LISBON_ANSWERS, messages=scenarios.CHAT, mode="ranking", priority=4
    )
    by_drag = make(
        project,
        ["Paris.", "It is Paris, on the Seine.", "Lyon.", "I am not sure."],
        text="What is the capital of France?",
        mode="ranking",
        priority=3,
    )
    double = make(
        project,
        ["Water boils at 100 °C.", "Water boils at 90 °C."],
        text="At what temperature does water boil at sea level?",
        priority=2,
    )
    skipped = make(project, ["Yes.", "No."], text="Is this prompt readable?", priority=1)

    page.goto("/login/")
    snap(page, "login", tablet=True)
    sign_in(page, "ann")
    snap(page, "home", tablet=True)
    page.get_by_role("link", name="Start annotating").click()
    page.wait_for_url(f"**/projects/{project.pk}/work/")
    page.wait_for_load_state("load")

    # Pairwise, keys only: 1 = left better, W = much, R = rationale, Esc, Enter submits.
    wait_for_task(page, pair)
    pair_order = shown_order(page)
    page.keyboard.press("1")
    page.keyboard.press("w")
    page.keyboard.press("r")
    page.keyboard.type("The left one shows both ways with code.")
    page.keyboard.press("Escape")
    snap(page, "pairwise", tablet=True)
    page.keyboard.press("Enter")

    # Ranking, keys only: place 2, then 3, then 1, and tie 1 with the place above; then move.
    wait_for_task(page, by_keys)
    expect(page.locator("#announce")).to_have_text("Saved. The next task is ready.")
    expect(page.locator("#task")).to_be_focused()
    keys_order, numbers = shown_order(page), chip_ids(page)
    page.keyboard.press("Enter")  # incomplete: refused inline, nothing sent
    expect(page.locator("#task-errors")).to_contain_text("Rank every output")
    for key in ("2", "3", "1", "t"):
        page.keyboard.press(key)
    expect(page.locator(".rank-place")).to_have_count(2)  # 2 > 3 = 1
    # Arrows move the picked output: out of the tie above it, then past 2; then tie 3 with 2.
    for key in ("ArrowUp", "ArrowUp", "3", "t"):
        page.keyboard.press(key)
    snap(page, "ranking", tablet=True)
    page.keyboard.press("Enter")

    # Ranking by drag and drop: 4 first, 2 below it, 1 tied with 2, 3 last; submit by mouse.
    wait_for_task(page, by_drag)
    drag_order, numbers_drag = shown_order(page), chip_ids(page)
    chip = lambda n: page.locator(f'#task .chip[data-number="{n}"]')  # noqa: E731
    rank_list = page.locator("#task .rank-list").bounding_box()
    drag(page, chip(4), rank_list["x"] + 40, rank_list["y"] + rank_list["height"] / 2)
    first = page.locator(".rank-place").nth(0).bounding_box()
    drag(page, chip(2), first["x"] + 60, first["y"] + first["height"] * 0.92)
    second = page.locator(".rank-place").nth(1).bounding_box()
    drag(page, chip(1), second["x"] + 60, second["y"] + second["height"] / 2)
    second = page.locator(".rank-place").nth(1).bounding_box()
    drag(page, chip(3), second["x"] + 60, second["y"] + second["height"] * 0.95)
    expect(page.locator(".rank-place")).to_have_count(3)
    snap(page, "ranking-dragged")
    page.get_by_role("button", name="Submit").click()

    # A double-clicked submit stores one judgment.
    wait_for_task(page, double)
    double_order = shown_order(page)
    page.locator("label[for=choice-tie]").click()
    page.get_by_role("button", name="Submit").dblclick()

    # Skip with a reason.
    wait_for_task(page, skipped)
    page.keyboard.press("s")
    expect(page.locator("#skip-dialog")).to_be_visible()
    page.keyboard.type("Outside my expertise")
    snap(page, "skip-dialog")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
    expect(page.locator("#today-count")).to_have_text("4 judged today")
    expect(page.locator("#task-errors")).to_be_empty()  # nothing left over from the task

    judgments = {j.task_id: j for j in Judgment.objects.filter(annotator=annotator)}
    assert set(judgments) == {pair.pk, by_keys.pk, by_drag.pk, double.pk}

    left_position = pair.items.get(completion_id=pair_order[0]).position
    assert judgments[pair.pk].choice == "ab"[left_position]
    assert judgments[pair.pk].strength == "much"
    assert judgments[pair.pk].rationale == "The left one shows both ways with code."
    assert judgments[pair.pk].shown_order == pair_order

    assert judgments[by_keys.pk].ranking == [[numbers[1]], [numbers[2], numbers[3]]]
    assert judgments[by_keys.pk].shown_order == keys_order
    assert judgments[by_drag.pk].ranking == [
        [numbers_drag[4]],
        [numbers_drag[2], numbers_drag[1]],
        [numbers_drag[3]],
    ]
    assert judgments[by_drag.pk].shown_order == drag_order
    assert (judgments[double.pk].choice, judgments[double.pk].shown_order) == ("tie", double_order)
    assert all(j.time_spent_ms and j.time_spent_ms > 0 for j in judgments.values())

    skip = Assignment.objects.get(task=skipped, annotator=annotator)
    assert (skip.status, skip.skip_reason, skip.skip_note) == (
        "skipped",
        "skip",
        "Outside my expertise",
    )


def test_z_takes_back_the_last_answer_and_shows_its_task_again(
    page, transactional_db, django_user_model
):
    project = scenarios.make_project()
    annotator = django_user_model.objects.create_user("ann", password="pw")
    services.add_member(project_id=project.pk, user_id=annotator.pk)
    first = scenarios.make_task(project, ["Yes.", "No."], text="Is water wet?", priority=2)
    second = scenarios.make_task(project, ["Blue.", "Green."], text="Sky colour?", priority=1)
    sign_in(page, "ann")
    page.get_by_role("link", name="Start annotating").click()
    page.wait_for_url(f"**/projects/{project.pk}/work/")
    page.wait_for_load_state("load")  # the key handlers are in place: no key press is lost

    wait_for_task(page, first)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    wait_for_task(page, second)
    page.keyboard.press("z")  # a slip: take it back
    wait_for_task(page, first)
    expect(page.locator("#announce")).to_have_text(
        "Your last answer is taken back: answer this task again."
    )
    assert not Judgment.objects.exists()
    right = page.locator("#choice-right").get_attribute("value")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    wait_for_task(page, second)
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
    # From the done screen too; and with nothing left to take back, the reason shows inline.
    page.keyboard.press("z")
    wait_for_task(page, second)
    assert Judgment.objects.get(task=first).choice == right  # the second answer, kept
    page.get_by_role("button", name="Undo last").click()
    wait_for_task(page, first)
    page.get_by_role("button", name="Undo last").click()
    expect(page.locator("#task-errors")).to_contain_text("no judgment in this project")
    assert not Judgment.objects.exists()


def test_a_held_z_takes_back_one_answer_and_waits_for_an_answer_in_flight(
    page, transactional_db, django_user_model
):
    project = scenarios.make_project()
    annotator = django_user_model.objects.create_user("ann", password="pw")
    services.add_member(project_id=project.pk, user_id=annotator.pk)
    first, second, third = (
        scenarios.make_task(project, ["Yes.", "No."], text=f"Question {n}?", priority=3 - n)
        for n in range(3)
    )
    sign_in(page, "ann")
    page.get_by_role("link", name="Start annotating").click()
    page.wait_for_url(f"**/projects/{project.pk}/work/")
    page.wait_for_load_state("load")
    for task, following in ((first, second), (second, third)):
        wait_for_task(page, task)
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        wait_for_task(page, following)
    undos = []
    page.on("request", lambda request: undos.append(request) if "/undo/" in request.url else None)
    # Z held past the repeat delay: the repeats take back nothing more.
    with page.expect_response("**/undo/"):
        page.keyboard.down("z")
        page.evaluate(
            "for (let i = 0; i < 3; i++) document.body.dispatchEvent("
            "new KeyboardEvent('keydown', {key: 'z', repeat: true, bubbles: true}))"
        )
        page.keyboard.up("z")
    wait_for_task(page, second)
    assert len(undos) == 1
    assert list(Judgment.objects.values_list("task_id", flat=True)) == [first.pk]
    # Enter then Z at once: the undo waits for the answer, then takes that one back.
    with page.expect_response("**/undo/") as undone:
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        page.keyboard.press("z")
    assert undone.value.ok
    wait_for_task(page, second)
    assert list(Judgment.objects.values_list("task_id", flat=True)) == [first.pk]


def test_a_skip_refused_closes_its_dialog_to_show_why(page, transactional_db, django_user_model):
    project = scenarios.make_project()
    annotator = django_user_model.objects.create_user("ann", password="pw")
    services.add_member(project_id=project.pk, user_id=annotator.pk)
    task = scenarios.make_task(project, ["Yes.", "No."], text="Is water wet?")
    sign_in(page, "ann")
    page.get_by_role("link", name="Start annotating").click()
    page.wait_for_url(f"**/projects/{project.pk}/work/")
    page.wait_for_load_state("load")
    wait_for_task(page, task)
    Assignment.objects.filter(task=task).delete()  # as a sweep of expired leases would
    page.keyboard.press("s")
    expect(page.locator("#skip-dialog")).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("#skip-dialog")).to_be_hidden()
    expect(page.locator("#task-errors")).to_contain_text("not leased to you")
    page.locator("#task-errors").get_by_role("button").click()  # load the next task
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
