"""Agreement measures and annotator quality signals, against hand-computed values."""

import math

import numpy as np
import pytest
import scipy.stats

from feedback import agreement
from feedback.agreement import GoldAnswer
from feedback.pairs import JudgmentView

NAN = math.nan


def pairwise(annotator, task, choice, *, items=(1, 2), shown=(), prompt=1):
    return JudgmentView(
        judgment_id=annotator * 1000 + task,
        task_id=task,
        prompt_id=prompt,
        annotator_id=annotator,
        kind="pairwise",
        items=items,
        choice=choice,
        shown_order=shown,
    )


def ranking(annotator, task, groups, prompt=1):
    items = tuple(c for g in groups for c in g)
    return JudgmentView(
        annotator * 1000 + task, task, prompt, annotator, "ranking", items, ranking=groups
    )


def table(rows):
    """A LabelTable from rows of labels per annotator (annotators 1, 2, ...), NaN = missing."""
    values = np.array(rows, dtype=float)
    return agreement.LabelTable(
        tuple(range(1, len(rows) + 1)), tuple(range(values.shape[1])), values
    )


def test_cohen_kappa_hand_computed():
    first = list("aaaabbbbab")
    second = list("aaabbbbaaa")
    # Observed 7/10; chance 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa (0.7 - 0.5) / 0.5.
    assert agreement.cohen_kappa(first, second) == pytest.approx(0.4)
    assert agreement.cohen_kappa(list("ab"), list("ab")) == pytest.approx(1)
    assert math.isnan(agreement.cohen_kappa(list("aa"), list("aa")))


def test_cohen_kappa_by_pair_uses_only_shared_units():
    labels = table([[0, 0, 1, 1, NAN], [0, 1, 1, 1, 0], [NAN, NAN, NAN, 1, 1]])
    kappas = agreement.cohen_kappa_by_pair(labels, min_shared=2)
    # 1 and 2 share units 0-3: observed 3/4, chance (2*1 + 2*3)/16 = 0.5, kappa 0.5.
    assert kappas[(1, 2)] == pytest.approx(0.5)
    # 2 and 3 share units 3-4 with labels (1, 0) and (1, 1): observed 1/2, chance 1/2, kappa 0.
    assert kappas[(2, 3)] == pytest.approx(0.0)
    assert (1, 3) not in kappas  # one shared unit only


def test_krippendorff_alpha_nominal_and_ordinal_hand_computed():
    # Coincidences: o11 = 2, o23 = o32 = 2, o33 = 2; n1 = n2 = 2, n3 = 4, n = 8.
    # Nominal: 1 - 7 * 4 / (2 * (4 + 8 + 8)) = 0.3.
    # Ordinal: delta12 = 4, delta23 = 9, delta13 = 25; 1 - 7 * 36 / (2 * (16 + 72 + 200)) = 0.5625.
    labels = table([[1, 2, 3, 3], [1, 3, 3, 2]])
    assert agreement.krippendorff_alpha(labels, "nominal") == pytest.approx(0.3)
    assert agreement.krippendorff_alpha(labels, "ordinal") == pytest.approx(0.5625)


def test_krippendorff_alpha_published_example_with_missing_values():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 3-coder example C.
    labels = table(
        [
            [NAN, NAN, NAN, NAN, NAN, 3, 4, 1, 2, 1, 1, 3, 3, NAN, 3],
            [1, NAN, 2, 1, 3, 3, 4, 3, NAN, NAN, NAN, NAN, NAN, NAN, NAN],
            [NAN, NAN, 2, 1, 3, 4, 4, NAN, 2, 1, 1, 3, 3, NAN, 4],
        ]
    )
    assert agreement.krippendorff_alpha(labels, "nominal") == pytest.approx(0.691, abs=1e-3)
    assert agreement.krippendorff_alpha(labels, "interval") == pytest.approx(0.811, abs=1e-3)


def test_krippendorff_alpha_is_nan_without_two_values_to_compare():
    assert math.isnan(agreement.krippendorff_alpha(table([[1, 1], [1, 1]]), "nominal"))


def test_percent_agreement_pools_annotator_pairs():
    labels = table([[0, 0, 1], [0, 1, NAN], [0, 1, 1]])
    # Unit 0: 3 pairs agree; unit 1: 1 of 3; unit 2: 1 of 1.
    assert agreement.percent_agreement(labels) == pytest.approx(5 / 7)
    by_annotator = agreement.agreement_by_annotator(labels)
    # Annotator 1 meets 2 co-labels on unit 0 (agree), 2 on unit 1 (disagree), 1 on unit 2 (agree).
    assert by_annotator[1] == pytest.approx(3 / 5)
    assert by_annotator[2] == pytest.approx(3 / 4)
    assert by_annotator[3] == pytest.approx(4 / 5)


def test_consensus_agreement_is_leave_one_out_and_skips_drawn_units():
    labels = table([[0, 0, 1, 0], [0, 1, 1, 1], [0, 1, 1, NAN], [1, 1, 1, NAN]])
    found = agreement.consensus_agreement(labels)
    # Annotator 1: unit 0 others (0, 0, 1) -> 0, agree; unit 1 others (1, 1, 1), disagree;
    # unit 2 agree; unit 3 others (1), disagree.
    assert found[1] == pytest.approx(2 / 4)
    # Annotator 4: unit 0 others (0, 0, 0) disagree; units 1, 2 agree.
    assert found[4] == pytest.approx(2 / 3)
    two = table([[0], [1]])
    assert agreement.consensus_agreement(two) == {1: 0.0, 2: 0.0}


def test_pairwise_and_ranking_label_tables():
    judgments = [pairwise(1, 10, "a"), pairwise(2, 10, "both_bad"), pairwise(2, 11, "tie")]
    labels = agreement.pairwise_labels(judgments)
    assert labels.annotators == (1, 2) and labels.units == (10, 11)
    np.testing.assert_array_equal(labels.values, [[0, NAN], [3, 2]])
    ranks = agreement.ranking_labels([ranking(1, 5, ((7,), (8, 9)))])
    assert ranks.units == ((5, 7), (5, 8), (5, 9))
    np.testing.assert_array_equal(ranks.values, [[0, 1, 1]])
    with pytest.raises(ValueError, match="twice"):
        agreement.pairwise_labels([pairwise(1, 10, "a"), pairwise(1, 10, "b")])


def test_verdicts_compare_a_ranking_with_a_pairwise_choice():
    judgments = [
        ranking(1, 20, ((3,), (1,), (2,))),
        pairwise(2, 21, "b", items=(3, 1)),  # 1 over 3: against annotator 1
        pairwise(3, 22, "a", items=(1, 2)),  # 1 over 2: with annotator 1
    ]
    verdicts = agreement.verdict_labels(judgments)
    assert set(verdicts.units) == {(1, 1, 2), (1, 1, 3), (1, 2, 3)}
    rates = agreement.agreement_by_annotator(verdicts)
    assert rates == {1: 0.5, 2: 0.0, 3: 1.0}


def test_verdicts_keep_an_annotators_latest_view_of_a_pair_met_twice():
    # Annotator 1 prefers output 1 in a pairwise task, then ranks 2 over 1 in a later task over
    # the same outputs (the demo project mixes both kinds): one label, the later one.
    judgments = [
        pairwise(1, 30, "a", items=(1, 2)),
        ranking(1, 31, ((2,), (1,), (3,))),
        pairwise(2, 30, "b", items=(1, 2)),
    ]
    verdicts = agreement.verdict_labels(judgments)
    assert verdicts.annotators == (1, 2)
    assert verdicts.units == ((1, 1, 2), (1, 2, 3), (1, 1, 3))
    np.testing.assert_array_equal(verdicts.values, [[-1, 1, 1], [-1, NAN, NAN]])
    assert agreement.agreement_by_annotator(verdicts) == {1: 1.0, 2: 1.0}


def test_robust_z_scores_and_outliers():
    scores = {1: 0.9, 2: 0.85, 3: 0.8, 4: 0.88, 5: 0.3}
    z = agreement.robust_z_scores(scores)
    # Median 0.85, MAD median(|.05, 0, .05, .03, .55|) = 0.05.
    assert z[5] == pytest.approx(0.6745 * (0.3 - 0.85) / 0.05)
    assert agreement.flag_outliers(scores) == [5]
    assert agreement.flag_outliers({1: 0.9, 2: 0.1}) == []  # no crowd to stand out from


def test_robust_z_scores_fall_back_to_mean_absolute_deviation():
    scores = {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 0.5}
    # MAD 0; mean absolute deviation 0.1.
    assert agreement.robust_z_scores(scores)[5] == pytest.approx(-0.5 / (1.253314 * 0.1))
    assert agreement.flag_outliers(scores) == [5]
    assert agreement.flag_outliers({1: 1.0, 2: 1.0, 3: 1.0}) == []


def test_position_bias_counts_left_wins_among_decisive_judgments():
    judgments = [
        pairwise(1, 1, "a", shown=(1, 2)),  # a shown left, a won: left
        pairwise(1, 2, "b", shown=(2, 1)),  # b shown left, b won: left
        pairwise(1, 3, "b", shown=(1, 2)),  # right won
        pairwise(1, 4, "tie", shown=(1, 2)),  # not decisive
        pairwise(1, 5, "a"),  # no shown order
        pairwise(2, 6, "a", shown=(2, 1)),
    ]
    bias = agreement.position_bias(judgments[:5])
    assert (bias.left_wins, bias.decisive) == (2, 3)
    assert bias.left_win_rate == pytest.approx(2 / 3)
    assert bias.p_value == pytest.approx(scipy.stats.binomtest(2, 3).pvalue)
    by_annotator = agreement.position_bias_by_annotator(judgments)
    assert by_annotator[2].left_win_rate == 0.0


def test_gold_accuracy_for_choices_and_rankings():
    # Judgment ids are annotator * 1000 + task; the checks are what score.
    gold = {
        1: GoldAnswer(choice="a", checks=frozenset({7001, 8001})),
        2: GoldAnswer(ranking=((1,), (2, 3), (4,)), checks=frozenset({7002})),
        3: GoldAnswer(ranking=((1, 2),), checks=frozenset({7003})),  # all tied: nothing to score
    }
    judgments = [
        pairwise(7, 1, "a"),
        ranking(7, 2, ((1,), (3,), (2,), (4,))),
        ranking(7, 3, ((1,), (2,))),
        pairwise(8, 1, "b"),
        pairwise(8, 99, "b"),  # not a gold task
        pairwise(9, 1, "b"),  # not a check: the answer was decided from it
    ]
    # Gold's strict orderings: 1>2, 1>3, 1>4, 2>4, 3>4; annotator 7 keeps all five.
    assert agreement.gold_score(judgments[1], gold[2]) == 1.0
    swapped = ranking(7, 2, ((2,), (1,), (3,), (4,)))
    assert agreement.gold_score(swapped, gold[2]) == pytest.approx(4 / 5)
    accuracy = agreement.gold_accuracy(judgments, gold)
    assert accuracy[7] == agreement.GoldAccuracy(1.0, 2)
    assert accuracy[8] == agreement.GoldAccuracy(0.0, 1)
    assert 9 not in accuracy


def test_annotator_quality_flags_the_annotator_who_disagrees_with_everyone():
    choices = "aabab"
    judgments = []
    for annotator in range(1, 6):
        for task, choice in enumerate(choices):
            if annotator == 5:
                choice = "b" if choice == "a" else "a"
            items = (task * 2 + 1, task * 2 + 2)
            judgments.append(pairwise(annotator, task, choice, items=items, shown=items))
    report = {q.annotator_id: q for q in agreement.annotator_quality(judgments)}
    assert [a for a, q in report.items() if q.is_outlier] == [5]
    assert report[5].consensus_agreement == 0.0 and report[1].consensus_agreement == 1.0
    assert report[1].agreement == pytest.approx(3 / 4)
    assert report[1].judgments == 5 and report[1].left_win_rate == pytest.approx(3 / 5)
    assert math.isnan(report[1].gold_accuracy) and report[1].gold_tasks == 0
