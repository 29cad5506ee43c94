"""Judgments to preference pairs under each policy choice, against hand-listed pairs."""

import math

import pytest

from feedback.pairs import JudgmentView, Pair, PairPolicy, preference_pairs

NEXT_ID = iter(range(1, 10_000))


def pairwise(choice, strength=None, *, items=(1, 2), annotator=7, task=100, prompt=5):
    return JudgmentView(
        judgment_id=next(NEXT_ID),
        task_id=task,
        prompt_id=prompt,
        annotator_id=annotator,
        kind="pairwise",
        items=items,
        choice=choice,
        strength=strength,
    )


def ranking(groups, *, annotator=7, task=200, prompt=5):
    items = tuple(c for group in groups for c in group)
    return JudgmentView(next(NEXT_ID), task, prompt, annotator, "ranking", items, ranking=groups)


def rating(scores, *, annotator=7, task=300, prompt=5):
    return JudgmentView(
        next(NEXT_ID), task, prompt, annotator, "rating", tuple(scores), ratings=scores
    )


def triples(pairs):
    return [(p.chosen_id, p.rejected_id, p.margin, p.is_tie) for p in pairs]


def test_a_pairwise_choice_gives_one_pair_with_the_strength_margin():
    judgment = pairwise("b", "much")
    [pair] = preference_pairs([judgment], PairPolicy())
    assert pair == Pair(
        5, 2, 1, 2.0, False, (judgment.judgment_id,), (100,), (judgment.judgment_id,)
    )
    assert triples(preference_pairs([pairwise("a", "slight")], PairPolicy())) == [
        (1, 2, 1.0, False)
    ]
    assert triples(preference_pairs([pairwise("a")], PairPolicy(plain_margin=1.5))) == [
        (1, 2, 1.5, False)
    ]


def test_ties_are_dropped_or_kept_as_ties():
    tie = pairwise("tie", items=(9, 4))
    assert preference_pairs([tie], PairPolicy()) == []
    # A tie names the smaller id first, with margin 0.
    assert triples(preference_pairs([tie], PairPolicy(ties="keep"))) == [(4, 9, 0.0, True)]


def test_both_bad_stays_out_of_chosen_and_rejected_unless_asked():
    both_bad = pairwise("both_bad")
    assert preference_pairs([both_bad], PairPolicy(ties="keep")) == []
    as_tie = PairPolicy(ties="keep", both_bad="tie")
    assert triples(preference_pairs([both_bad], as_tie)) == [(1, 2, 0.0, True)]


RANKED = ((10,), (11, 12), (13,))


def test_all_pairs_of_a_ranking_with_margins_from_rank_distance():
    got = triples(preference_pairs([ranking(RANKED)], PairPolicy(ties="keep")))
    assert got == [
        (10, 11, 1.0, False),
        (10, 12, 1.0, False),
        (10, 13, 2.0, False),
        (11, 12, 0.0, True),
        (11, 13, 1.0, False),
        (12, 13, 1.0, False),
    ]


def test_adjacent_pairs_of_a_ranking():
    policy = PairPolicy(ranking_pairs="adjacent", rank_step_margin=0.5)
    got = triples(preference_pairs([ranking(RANKED)], policy))
    assert got == [
        (10, 11, 0.5, False),
        (10, 12, 0.5, False),
        (11, 13, 0.5, False),
        (12, 13, 0.5, False),
    ]


def test_best_versus_the_rest():
    policy = PairPolicy(ranking_pairs="best_vs_rest", ties="keep")
    got = triples(preference_pairs([ranking(RANKED)], policy))
    # The tie inside the second group is not about the best, so it is not a pair here.
    assert got == [(10, 11, 1.0, False), (10, 12, 1.0, False), (10, 13, 2.0, False)]
    shared_top = triples(preference_pairs([ranking(((3, 1), (2,)))], policy))
    assert shared_top == [(1, 2, 1.0, False), (1, 3, 0.0, True), (3, 2, 1.0, False)]


def test_ratings_give_pairs_from_gaps_of_at_least_the_minimum():
    policy = PairPolicy(min_rating_gap=2, ties="keep", rating_point_margin=0.5)
    got = triples(preference_pairs([rating({1: 7, 2: 5, 3: 4})], policy))
    assert got == [(1, 2, 1.0, False), (1, 3, 1.5, False), (2, 3, 0.0, True)]


def test_majority_of_three_annotators_with_a_dissent_lowering_the_margin():
    votes = [
        pairwise("a", "much", annotator=1),
        pairwise("a", "slight", annotator=2),
        pairwise("b", "slight", annotator=3),
    ]
    [pair] = preference_pairs(votes, PairPolicy())
    assert (pair.chosen_id, pair.rejected_id, pair.is_tie) == (1, 2, False)
    assert pair.margin == pytest.approx((2 + 1 - 1) / 3)
    assert pair.judgment_ids == tuple(sorted(v.judgment_id for v in votes))
    assert pair.backing_ids == tuple(sorted(v.judgment_id for v in votes[:2]))  # not the dissent


def test_majority_draws_and_tie_pluralities_are_ties():
    split = [pairwise("a", annotator=1), pairwise("b", annotator=2)]
    assert preference_pairs(split, PairPolicy()) == []
    assert triples(preference_pairs(split, PairPolicy(ties="keep"))) == [(1, 2, 0.0, True)]
    mostly_tie = [
        pairwise("tie", annotator=1),
        pairwise("tie", annotator=2),
        pairwise("a", annotator=3),
    ]
    [tie] = preference_pairs(mostly_tie, PairPolicy(ties="keep"))
    assert (tie.chosen_id, tie.rejected_id, tie.margin, tie.is_tie) == (1, 2, 0.0, True)
    assert tie.backing_ids == tuple(sorted(v.judgment_id for v in mostly_tie[:2]))
    [split_tie] = preference_pairs(split, PairPolicy(ties="keep"))
    assert split_tie.backing_ids == ()  # a draw: no vote said "tie"


def test_majority_pools_votes_on_the_same_completions_across_tasks_and_kinds():
    votes = [
        pairwise("b", items=(11, 10), task=1, annotator=1),  # 10 over 11
        ranking(((10,), (11,)), task=2, annotator=2),  # 10 over 11
        pairwise("a", items=(11, 10), task=3, annotator=3),  # 11 over 10
    ]
    [pair] = preference_pairs(votes, PairPolicy())
    assert (pair.chosen_id, pair.rejected_id) == (10, 11)
    assert pair.margin == pytest.approx(1 / 3)
    assert pair.task_ids == (1, 2, 3)


def test_no_aggregation_keeps_one_pair_per_vote():
    votes = [pairwise("a", annotator=1), pairwise("b", annotator=2), pairwise("a", annotator=3)]
    got = triples(preference_pairs(votes, PairPolicy(aggregate="none")))
    assert sorted(got) == [(1, 2, 1.0, False), (1, 2, 1.0, False), (2, 1, 1.0, False)]


def test_bradley_terry_aggregation_margin_is_the_fitted_log_odds_gap():
    # Two wins to one: the unpenalised gap is log(2).
    votes = [pairwise("a", annotator=1), pairwise("a", annotator=2), pairwise("b", annotator=3)]
    [pair] = preference_pairs(votes, PairPolicy(aggregate="bradley_terry", bradley_terry_l2=0))
    assert (pair.chosen_id, pair.rejected_id) == (1, 2)
    assert pair.margin == pytest.approx(math.log(2), abs=1e-8)


def test_bradley_terry_aggregation_resolves_a_cycle_into_ties():
    cycle = [
        pairwise("a", items=(1, 2), annotator=1),
        pairwise("a", items=(2, 3), annotator=2),
        pairwise("a", items=(3, 1), annotator=3),
    ]
    policy = PairPolicy(aggregate="bradley_terry", ties="keep")
    assert triples(preference_pairs(cycle, policy)) == [
        (1, 2, 0.0, True),
        (1, 3, 0.0, True),
        (2, 3, 0.0, True),
    ]
    # Majority keeps each direct verdict, cycle and all.
    assert [p.is_tie for p in preference_pairs(cycle, PairPolicy())] == [False] * 3


def test_prompts_are_kept_apart():
    got = preference_pairs([pairwise("a", prompt=2), pairwise("b", prompt=1)], PairPolicy())
    assert [(p.prompt_id, p.chosen_id) for p in got] == [(1, 2), (2, 1)]


@pytest.mark.parametrize(
    "fields",
    [{"ranking_pairs": "pairs"}, {"ties": "maybe"}, {"much_margin": -1}, {"min_rating_gap": 0}],
)
def test_policy_refuses_unknown_or_negative_settings(fields):
    with pytest.raises(ValueError):
        PairPolicy(**fields)


def test_a_ranking_naming_a_completion_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        preference_pairs([ranking(((1,), (1, 2)))], PairPolicy())


def test_bradley_terry_aggregation_without_prior_names_the_prompt_it_cannot_fit():
    policy = PairPolicy(aggregate="bradley_terry", bradley_terry_l2=0)
    with pytest.raises(ValueError, match="prompt 5: .*l2 > 0"):
        preference_pairs([pairwise("a")], policy)
