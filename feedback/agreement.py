"""Agreement between annotators and signs of a careless one: pure functions over judgments.

Labels go into a `LabelTable` (annotators x units, NaN where an annotator did not label a unit):
`pairwise_labels` (choices per task; alpha "nominal"), `ranking_labels` (rank places per task and
completion; alpha "ordinal"), or `verdict_labels` (verdicts on pairs of completions from any kind
of judgment). Krippendorff's alpha comes from the `krippendorff` package; the rest is short
enough to write out.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import krippendorff
import numpy as np
import scipy.stats

from feedback.pairs import Choice, JudgmentView, PairPolicy, votes_from_judgment

PAIRWISE_CODES: dict[str, float] = {"a": 0.0, "b": 1.0, "tie": 2.0, "both_bad": 3.0}

# Verdicts on a pair of completions: every pair a ranking or rating implies, ties kept,
# "both bad" read as a tie (neither is better).
_VERDICT_POLICY = PairPolicy(name="agreement", ties="keep", both_bad="tie", aggregate="none")


@dataclass(frozen=True)
class LabelTable:
    """A reliability matrix: values[i, u] is annotator i's label of unit u, NaN if none."""

    annotators: tuple[int, ...]
    units: tuple[Hashable, ...]
    values: np.ndarray

    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.values)


def label_table(
    annotator_ids: Sequence[int], unit_ids: Sequence[Hashable], labels: Sequence[float]
) -> LabelTable:
    """Build a LabelTable from parallel lists (one entry per label)."""
    if not len(annotator_ids) == len(unit_ids) == len(labels):
        raise ValueError("annotator_ids, unit_ids and labels must have the same length")
    annotators = tuple(sorted(set(annotator_ids)))
    units = tuple(dict.fromkeys(unit_ids))
    row = {a: i for i, a in enumerate(annotators)}
    column = {u: j for j, u in enumerate(units)}
    values = np.full((len(annotators), len(units)), np.nan)
    for annotator, unit, label in zip(annotator_ids, unit_ids, labels, strict=True):
        i, j = row[annotator], column[unit]
        if not np.isnan(values[i, j]):
            raise ValueError(f"annotator {annotator} labelled unit {unit!r} twice")
        values[i, j] = label
    return LabelTable(annotators, units, values)


def pairwise_labels(judgments: Iterable[JudgmentView]) -> LabelTable:
    """Pairwise choices per task, coded by PAIRWISE_CODES (nominal)."""
    found = [j for j in judgments if j.kind == "pairwise" and j.choice is not None]
    return label_table(
        [j.annotator_id for j in found],
        [j.task_id for j in found],
        [PAIRWISE_CODES[j.choice] for j in found],
    )


def ranking_labels(judgments: Iterable[JudgmentView]) -> LabelTable:
    """Rank places per (task, completion), 0 for the best group (ordinal)."""
    annotators, units, places = [], [], []
    for j in judgments:
        if j.kind != "ranking" or j.ranking is None:
            continue
        for place, group in enumerate(j.ranking):
            for completion in group:
                annotators.append(j.annotator_id)
                units.append((j.task_id, completion))
                places.append(float(place))
    return label_table(annotators, units, places)


def verdict_labels(judgments: Iterable[JudgmentView]) -> LabelTable:
    """Verdicts on pairs of completions, unit (prompt, low id, high id): +1 the lower id is
    better, -1 the higher, 0 a tie. Any kind of judgment; a ranking gives every pair it orders.

    A unit spans tasks: two annotators who compared the same two completions in different tasks
    are compared too. So one annotator can meet a unit twice (a pairwise task, then a ranking of
    the same outputs); their latest verdict counts, judgments being given in time order.
    Ordered (-1 < 0 < +1), so ordinal alpha applies.
    """
    return verdict_table(verdicts_of(judgments))


# (annotator, task, unit (prompt, low id, high id), verdict): one judgment's say on one pair.
Verdict = tuple[int, int, tuple[int, int, int], float]


def verdicts_of(judgments: Iterable[JudgmentView]) -> list[Verdict]:
    """Every verdict the judgments give, in their order (see verdict_labels)."""
    return [
        (j.annotator_id, j.task_id, (vote.prompt_id, vote.low, vote.high), float(vote.winner))
        for j in judgments
        for vote in votes_from_judgment(j, _VERDICT_POLICY)
    ]


def verdict_table(verdicts: Iterable[Verdict]) -> LabelTable:
    """The verdicts as a LabelTable, each annotator's latest on a unit counting."""
    latest = {(annotator, unit): value for annotator, _, unit, value in verdicts}
    return label_table(
        [annotator for annotator, _ in latest], [unit for _, unit in latest], list(latest.values())
    )


def percent_agreement(table: LabelTable) -> float:
    """Share of agreeing pairs among all pairs of annotators who labelled the same unit."""
    agree, pairs = _agreeing_pairs(table)
    total = pairs.sum() / 2
    return float(agree.sum() / 2 / total) if total else math.nan


def agreement_by_annotator(table: LabelTable) -> dict[int, float]:
    """Each annotator's share of agreeing co-annotators on the units they shared; NaN if none."""
    agree, pairs = _agreeing_pairs(table)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = agree / pairs
    return {a: float(rate[i]) for i, a in enumerate(table.annotators)}


def _agreeing_pairs(table: LabelTable) -> tuple[np.ndarray, np.ndarray]:
    """Per annotator: (co-annotator labels equal to theirs, co-annotator labels) over units."""
    labelled = table.labelled()
    agree = np.zeros(len(table.annotators))
    for value in np.unique(table.values[labelled]):
        same = table.values == value
        agree += (same * (same.sum(axis=0) - 1)).sum(axis=1)
    pairs = (labelled * (labelled.sum(axis=0) - 1)).sum(axis=1)
    return agree, pairs.astype(float)


def krippendorff_alpha(
    table: LabelTable, level: Literal["nominal", "ordinal", "interval", "ratio"]
) -> float:
    """Krippendorff's alpha (Krippendorff 2011): nominal for choices, ordinal for ranks.

    NaN when fewer than two distinct values were given to units labelled twice or more.
    """
    shared = table.labelled().sum(axis=0) >= 2
    values = table.values[:, shared]
    if np.unique(values[~np.isnan(values)]).size < 2:
        return math.nan
    return float(krippendorff.alpha(reliability_data=values, level_of_measurement=level))


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Cohen's kappa (Cohen 1960) of two annotators' labels of the same units, in order.

    (p_o - p_e) / (1 - p_e); NaN when chance agreement is certain (both gave one label only).
    """
    if len(first) != len(second):
        raise ValueError("both annotators must label the same units")
    n = len(first)
    if n == 0:
        return math.nan
    observed = sum(x == y for x, y in zip(first, second, strict=True)) / n
    left, right = Counter(first), Counter(second)
    chance = sum(left[label] * right[label] for label in left) / (n * n)
    return (observed - chance) / (1 - chance) if chance < 1 else math.nan


def cohen_kappa_by_pair(table: LabelTable, *, min_shared: int = 1) -> dict[tuple[int, int], float]:
    """Cohen's kappa for every two annotators who labelled at least `min_shared` units both."""
    labelled = table.labelled()
    found = {}
    for i, k in combinations(range(len(table.annotators)), 2):
        both = labelled[i] & labelled[k]
        if both.sum() >= min_shared:
            kappa = cohen_kappa(table.values[i, both].tolist(), table.values[k, both].tolist())
            found[(table.annotators[i], table.annotators[k])] = kappa
    return found


def consensus_agreement(table: LabelTable) -> dict[int, float]:
    """Each annotator's agreement with the others' consensus, leave-one-out.

    On each unit they share, the consensus is the other annotators' most common label (a unit
    whose others draw is skipped). NaN for an annotator with no such unit.
    """
    labelled = table.labelled()
    values = np.unique(table.values[labelled])
    # counts[v, u]: how many annotators gave unit u the v-th label; less one's own, the others'.
    counts = (
        np.stack([(table.values == value).sum(axis=0) for value in values]) if values.size else None
    )
    found = {}
    for i, annotator in enumerate(table.annotators):
        units = np.flatnonzero(labelled[i])
        if counts is None or not units.size:
            found[annotator] = math.nan
            continue
        own = np.searchsorted(values, table.values[i, units])
        others = counts[:, units]
        others[own, np.arange(units.size)] -= 1
        best = others.max(axis=0)
        decided = (best > 0) & ((others == best).sum(axis=0) == 1)
        total = int(decided.sum())
        agree = int((decided & (others.argmax(axis=0) == own)).sum())
        found[annotator] = agree / total if total else math.nan
    return found


def robust_z_scores(scores: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Modified z-scores 0.6745 (x - median) / MAD (Iglewicz and Hoaglin 1993).

    When the MAD is 0 (most scores equal) the mean absolute deviation stands in,
    (x - median) / (1.253314 * meanAD), as IBM SPSS does; all 0 when both are 0. NaN scores
    are left out.
    """
    keys = [k for k, v in scores.items() if not math.isnan(v)]
    x = np.array([scores[k] for k in keys], dtype=float)
    if not keys:
        return {}
    median = np.median(x)
    mad = np.median(np.abs(x - median))
    if mad > 0:
        z = 0.6745 * (x - median) / mad
    else:
        mean_ad = np.mean(np.abs(x - median))
        z = (x - median) / (1.253314 * mean_ad) if mean_ad > 0 else np.zeros_like(x)
    return {k: float(v) for k, v in zip(keys, z, strict=True)}


def flag_outliers(
    scores: Mapping[Hashable, float],
    *,
    threshold: float = 3.5,
    side: Literal["low", "both"] = "low",
    min_annotators: int = 3,
) -> list[Hashable]:
    """Annotators whose score is an outlier: robust z below -threshold (or beyond +-threshold).

    3.5 is Iglewicz and Hoaglin's cut-off. With fewer than `min_annotators` scores nobody is an
    outlier: there is no crowd to stand out from.
    """
    z = robust_z_scores(scores)
    if len(z) < min_annotators:
        return []
    return [k for k, v in z.items() if v < -threshold or (side == "both" and v > threshold)]


@dataclass(frozen=True)
class PositionBias:
    """How often the completion shown on the left won decisive pairwise judgments."""

    left_wins: int
    decisive: int
    left_win_rate: float
    p_value: float  # two-sided exact binomial test of a 0.5 rate


def position_bias(judgments: Iterable[JudgmentView]) -> PositionBias:
    """Left-win rate over decisive ("a" or "b") pairwise judgments with a shown order."""
    left_wins = decisive = 0
    for j in judgments:
        if j.kind != "pairwise" or j.choice not in ("a", "b") or not j.shown_order:
            continue
        winner = j.items[0] if j.choice == "a" else j.items[1]
        decisive += 1
        left_wins += winner == j.shown_order[0]
    if not decisive:
        return PositionBias(0, 0, math.nan, math.nan)
    p_value = scipy.stats.binomtest(left_wins, decisive, 0.5).pvalue
    return PositionBias(left_wins, decisive, left_wins / decisive, float(p_value))


def position_bias_by_annotator(judgments: Iterable[JudgmentView]) -> dict[int, PositionBias]:
    by_annotator: dict[int, list[JudgmentView]] = defaultdict(list)
    for j in judgments:
        by_annotator[j.annotator_id].append(j)
    return {a: position_bias(found) for a, found in sorted(by_annotator.items())}


@dataclass(frozen=True)
class GoldAnswer:
    """The known answer of a gold task: a pairwise choice or a ranking (groups best first), and
    the judgments that score against it, its `checks` (not those it was decided from)."""

    choice: Choice | None = None
    ranking: tuple[tuple[int, ...], ...] | None = None
    checks: frozenset[int] = frozenset()


def gold_score(judgment: JudgmentView, gold: GoldAnswer) -> float | None:
    """1/0 for a pairwise choice; for a ranking, the share of the gold's strict orderings
    (x above y) that the judgment also makes. None when the two cannot be compared.
    """
    if judgment.kind == "pairwise" and gold.choice is not None:
        return float(judgment.choice == gold.choice)
    if judgment.kind == "ranking" and gold.ranking is not None and judgment.ranking is not None:
        place = {c: i for i, group in enumerate(judgment.ranking) for c in group}
        strict = [
            (x, y)
            for i, upper in enumerate(gold.ranking)
            for lower in gold.ranking[i + 1 :]
            for x in upper
            for y in lower
        ]
        if not strict:
            return None
        kept = sum(x in place and y in place and place[x] < place[y] for x, y in strict)
        return kept / len(strict)
    return None


@dataclass(frozen=True)
class GoldAccuracy:
    accuracy: float
    tasks: int


def gold_accuracy(
    judgments: Iterable[JudgmentView], gold: Mapping[int, GoldAnswer]
) -> dict[int, GoldAccuracy]:
    """Per annotator: mean gold_score over their checks of gold tasks (keyed by task id)."""
    scores: dict[int, list[float]] = defaultdict(list)
    for j in judgments:
        answer = gold.get(j.task_id)
        checked = answer is not None and j.judgment_id in answer.checks
        score = gold_score(j, answer) if checked else None
        if score is not None:
            scores[j.annotator_id].append(score)
    return {a: GoldAccuracy(float(np.mean(s)), len(s)) for a, s in sorted(scores.items())}


@dataclass(frozen=True)
class AnnotatorQuality:
    """One annotator's quality signals; NaN where there is nothing to measure."""

    annotator_id: int
    judgments: int
    agreement: float
    consensus_agreement: float
    gold_accuracy: float
    gold_tasks: int
    left_win_rate: float
    is_outlier: bool


def annotator_quality(
    judgments: Sequence[JudgmentView],
    gold: Mapping[int, GoldAnswer] | None = None,
    *,
    threshold: float = 3.5,
    table: LabelTable | None = None,
) -> list[AnnotatorQuality]:
    """Agreement (on pair verdicts), consensus, gold and position bias for each annotator.

    An outlier is an annotator whose consensus agreement or gold accuracy has a robust z-score
    below -threshold among the project's annotators. `table`: the judgments' verdict_labels,
    where the caller has it already.
    """
    if table is None:
        table = verdict_labels(judgments)
    agreement = agreement_by_annotator(table)
    consensus = consensus_agreement(table)
    golds = gold_accuracy(judgments, gold or {})
    bias = position_bias_by_annotator(judgments)
    outliers = set(flag_outliers(consensus, threshold=threshold))
    outliers |= set(flag_outliers({a: g.accuracy for a, g in golds.items()}, threshold=threshold))
    counts = Counter(j.annotator_id for j in judgments)
    return [
        AnnotatorQuality(
            annotator_id=a,
            judgments=counts[a],
            agreement=agreement.get(a, math.nan),
            consensus_agreement=consensus.get(a, math.nan),
            gold_accuracy=golds[a].accuracy if a in golds else math.nan,
            gold_tasks=golds[a].tasks if a in golds else 0,
            left_win_rate=bias[a].left_win_rate,
            is_outlier=a in outliers,
        )
        for a in sorted(counts)
    ]
