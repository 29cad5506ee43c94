"""What the pages show (annotations/presentation.py): order, canonical letters, answers in words."""

import pytest

from annotations import presentation
from feedback import selectors, services
from feedback.models import Judgment

pytestmark = pytest.mark.django_db


def view_of(task, shown_order=None):
    shown = selectors.task_shown(task.pk)
    return presentation.task_view(task.pk, shown, rating_enabled=False, shown_order=shown_order)


def test_outputs_follow_the_shown_order_and_keep_their_canonical_letters(make_task):
    task = make_task(n=3, mode="ranking")
    ids = list(task.items.values_list("completion_id", flat=True))  # positions 0, 1, 2
    view = view_of(task, [ids[2], ids[0], ids[1]])
    assert [(o.completion_id, o.number, o.letter) for o in view.outputs] == [
        (ids[2], 1, "c"),
        (ids[0], 2, "a"),
        (ids[1], 3, "b"),
    ]
    canonical = view_of(task)
    assert [o.letter for o in canonical.outputs] == ["a", "b", "c"]


def test_pairwise_outputs_know_their_side(make_task):
    task = make_task()
    ids = list(task.items.values_list("completion_id", flat=True))
    view = view_of(task, [ids[1], ids[0]])
    assert [(o.side, o.letter) for o in view.outputs] == [("left", "b"), ("right", "a")]


def test_differences_are_offered_for_near_identical_outputs(project):
    prompt = services.create_prompt(project_id=project.pk, text="Say hello")
    ids = [
        services.create_completion(prompt_id=prompt.pk, text=t).pk
        for t in ("Hello there, friend!", "Hello there, friend.")
    ]
    task = services.create_task(prompt_id=prompt.pk, completion_ids=ids)
    view = view_of(task)
    assert view.has_differences
    assert '<mark class="diff">!</mark>' in view.outputs[0].diff_html


def test_outputs_cut_off_at_the_token_limit_say_so(project, client, make_member):
    prompt = services.create_prompt(project_id=project.pk, text="Tell a story")
    ids = [
        services.create_completion(
            prompt_id=prompt.pk, text=text, generation_settings={"finish_reason": reason}
        ).pk
        for text, reason in (("Once upon a time there", "length"), ("The end.", "stop"))
    ]
    task = services.create_task(prompt_id=prompt.pk, completion_ids=ids)
    view = view_of(task)
    assert [o.cut_off for o in view.outputs] == [True, False]
    client.force_login(make_member())
    page = client.get(f"/projects/{project.pk}/work/", follow=True).content.decode()
    assert page.count("Cut off at the length limit") == 1


def test_the_idempotency_key_is_fixed_per_lease(project, make_member, make_task):
    make_task()
    user = make_member()
    lease = services.next_task_for(annotator_id=user.pk, project_id=project.pk)
    again = services.next_task_for(annotator_id=user.pk, project_id=project.pk)
    assert presentation.idempotency_key(lease) == presentation.idempotency_key(again)
    assert str(lease.pk) in presentation.idempotency_key(lease)


def test_snippets_are_one_short_line():
    assert presentation.snippet_of("# Title\n\n**Bold** `code`") == "Title Bold code"
    assert len(presentation.snippet_of("word " * 50)) == presentation.SNIPPET_CHARS


def judgment(kind, **fields):
    return Judgment(kind=kind, **fields)


def test_answers_are_described_with_the_outputs_names():
    letters = presentation.letter_names({11: "b", 10: "a", 12: "c"})
    assert letters == {10: "A", 11: "B", 12: "C"}
    describe = presentation.describe_answer
    assert (
        describe(judgment("pairwise", choice="a", strength="slight"), letters)
        == "A slightly better"
    )
    assert describe(judgment("pairwise", choice="b", strength="much"), letters) == "B much better"
    assert describe(judgment("pairwise", choice="both_bad"), letters) == "Both bad"
    assert describe(judgment("ranking", ranking=[[12], [11, 10]]), letters) == "C > A = B"
    assert describe(judgment("rating", ratings={"11": 2, "10": 7}), letters) == "A: 7, B: 2"
    models = {10: "tuned", 11: "base"}  # in task order: "a" is the first
    assert describe(judgment("pairwise", choice="a"), models) == "tuned better"
    assert describe(judgment("ranking", ranking=[[11], [10]]), models) == "base > tuned"


def test_judgment_rows_group_equal_answers_and_mark_a_clear_majority():
    letters = {1: "a", 2: "b"}
    rows = presentation.judgment_rows(
        [
            judgment("ranking", ranking=[[1], [2]], shown_order=[2, 1]),
            judgment("ranking", ranking=[[2], [1]], shown_order=[1, 2]),
            judgment("ranking", ranking=[[1], [2]], shown_order=[1, 2]),
        ],
        letters,
    )
    assert [r.answer_group for r in rows] == [0, 1, 0]
    assert [r.is_majority for r in rows] == [True, False, True]
    assert rows[0].shown_letters == "B, A"
    tied = presentation.judgment_rows(
        [judgment("pairwise", choice="a"), judgment("pairwise", choice="b")], letters
    )
    assert not any(r.is_majority for r in tied)
    tie_orders = presentation.judgment_rows(
        [judgment("ranking", ranking=[[1, 2]]), judgment("ranking", ranking=[[2, 1]])], letters
    )
    assert [r.answer_group for r in tie_orders] == [0, 0]  # a tie is the same in any order
