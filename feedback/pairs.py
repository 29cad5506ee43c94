"""Preference pairs (chosen, rejected, margin) from judgments, under an explicit `PairPolicy`.

A judgment becomes votes on pairs of completions of one prompt; the policy says which pairs a
ranking yields, what ties and "both bad" become, how large a margin is, and how the votes of
several annotators on one pair are combined. Judgments are never changed: each Pair names the
judgments and tasks it came from, and those of the judgments that back it (voted as it says). Plain dataclasses in and out; no ORM.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from itertools import combinations
from typing import Literal

import numpy as np

from feedback import ratings

JudgmentKind = Literal["pairwise", "ranking", "rating"]
Choice = Literal["a", "b", "tie", "both_bad"]
Strength = Literal["slight", "much"]

_POLICY_CHOICES = {
    "ranking_pairs": ("all", "adjacent", "best_vs_rest"),
    "ties": ("drop", "keep"),
    "both_bad": ("drop", "tie"),
    "aggregate": ("none", "majority", "bradley_terry"),
}


@dataclass(frozen=True)
class JudgmentView:
    """One annotator's judgment of one task, as the pair and agreement maths read it.

    `items` are the task's completion ids in task order (choice "a" is items[0], "b" is
    items[1]); `ranking` lists groups of completion ids best first, a group being a tie;
    `ratings` maps completion ids to Likert scores; `shown_order` is the on-screen order
    (left first), for position bias.
    """

    judgment_id: int
    task_id: int
    prompt_id: int
    annotator_id: int
    kind: JudgmentKind
    items: tuple[int, ...]
    choice: Choice | None = None
    strength: Strength | None = None
    ranking: tuple[tuple[int, ...], ...] | None = None
    ratings: Mapping[int, int] | None = field(default=None, hash=False)
    shown_order: tuple[int, ...] = ()


@dataclass(frozen=True)
class Pair:
    """A training pair: `chosen_id` preferred to `rejected_id` by `margin` (>= 0).

    For a tie (`is_tie`) the margin is 0 and chosen_id is the smaller id.
    """

    prompt_id: int
    chosen_id: int
    rejected_id: int
    margin: float
    is_tie: bool
    judgment_ids: tuple[int, ...]  # every judgment that voted on the two
    task_ids: tuple[int, ...]
    # Those whose vote is the pair's verdict (a tie's: the tie votes); a dissent or a tie vote
    # on a decided pair does not back it. Exports filtered by annotator or agreement read these.
    backing_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class PairPolicy:
    """How judgments become pairs. Stored by `name` with the pairs it made.

    Which pairs:
      ranking_pairs  "all" (every two completions in different groups), "adjacent" (neighbouring
                     groups only) or "best_vs_rest" (the top group against every other).
      ties           "drop" or "keep" (as is_tie pairs): equal ranks, a "tie" choice, ratings
                     closer than min_rating_gap.
      both_bad       "drop" (default: neither completion is fit to be chosen) or "tie".
      Ratings-only judgments give every two rated completions; a gap of at least
      min_rating_gap Likert points is a preference, a smaller one a tie.

    Margin of one vote:
      pairwise   slight_margin, much_margin, or plain_margin when no strength was given;
      ranking    rank_step_margin * (number of groups between the two, plus one);
      rating     rating_point_margin * (difference in Likert points);
      tie        0.

    Several votes on the same pair of completions (annotators, tasks), by `aggregate`:
      "none"           one pair per vote (the same pair may repeat, or appear both ways);
      "majority"       the most common verdict of (first wins, second wins, tie), a draw between
                       verdicts being a tie; margin = the mean of the votes' margins signed
                       toward the winner (a dissent subtracts, a tie adds 0), floored at 0;
      "bradley_terry"  Bradley-Terry strengths of the prompt's completions from all its votes
                       (ties half, prior bradley_terry_l2); each compared pair is oriented by
                       strength, margin = the strength gap in log-odds, a tie below 1e-9.
    """

    name: str = "default"
    ranking_pairs: Literal["all", "adjacent", "best_vs_rest"] = "all"
    ties: Literal["drop", "keep"] = "drop"
    both_bad: Literal["drop", "tie"] = "drop"
    aggregate: Literal["none", "majority", "bradley_terry"] = "majority"
    plain_margin: float = 1.0
    slight_margin: float = 1.0
    much_margin: float = 2.0
    rank_step_margin: float = 1.0
    rating_point_margin: float = 1.0
    min_rating_gap: int = 1
    bradley_terry_l2: float = 0.1

    def __post_init__(self) -> None:
        for name, allowed in _POLICY_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        for setting in fields(self):
            if setting.name.endswith("_margin") and getattr(self, setting.name) < 0:
                raise ValueError(f"{setting.name} must be >= 0")
        if self.min_rating_gap < 1:
            raise ValueError("min_rating_gap must be at least 1")
        if self.bradley_terry_l2 < 0:
            raise ValueError("bradley_terry_l2 must be >= 0")


@dataclass(frozen=True)
class Decision:
    """A reviewer's final word on a task: the judgment accepted, or the answer given instead
    (a pairwise choice, or a ranking)."""

    task_id: int
    accepted_judgment_id: int | None = None
    choice: Choice | None = None
    ranking: tuple[tuple[int, ...], ...] | None = None


def as_decided(
    judgments: Iterable[JudgmentView], decisions: Iterable[Decision]
) -> list[JudgmentView]:
    """The judgments as reviewers decided their tasks: on a task with an accepted judgment that
    one alone counts; on one a reviewer overrode, each judgment counts as the reviewer's answer
    (they stay the pair's provenance, and all back it). Other tasks' judgments are as given."""
    by_task = {decision.task_id: decision for decision in decisions}
    decided = []
    for judgment in judgments:
        decision = by_task.get(judgment.task_id)
        if decision is None:
            decided.append(judgment)
        elif decision.accepted_judgment_id is not None:
            if judgment.judgment_id == decision.accepted_judgment_id:
                decided.append(judgment)
        elif decision.choice is not None and judgment.kind == "pairwise":
            decided.append(replace(judgment, choice=decision.choice, strength=None))
        elif decision.ranking is not None and judgment.kind != "pairwise":
            # A rating task is overridden with a ranking of its outputs.
            decided.append(
                replace(judgment, kind="ranking", ranking=decision.ranking, ratings=None)
            )
        else:  # an answer of another kind than the judgment's: the reviewer's word stands alone
            continue
    return decided


def policy_changes(settings: Mapping[str, object]) -> list[str]:
    """A stored policy's settings (PairPolicy's fields) that differ from the defaults, as
    "name: value"; the empty list for the defaults, or for settings not recorded."""
    default = PairPolicy()
    return [
        f"{setting.name.replace('_', ' ')}: {settings[setting.name]}"
        for setting in fields(PairPolicy)
        if setting.name != "name"
        and setting.name in settings
        and settings[setting.name] != getattr(default, setting.name)
    ]


@dataclass(frozen=True)
class Vote:
    """One judgment's verdict on completions low < high: winner +1 (low), -1 (high) or 0 (tie)."""

    prompt_id: int
    low: int
    high: int
    winner: int
    margin: float
    judgment_id: int
    task_id: int


def preference_pairs(judgments: Iterable[JudgmentView], policy: PairPolicy) -> list[Pair]:
    """Pairs from judgments under `policy`, sorted by (prompt, chosen, rejected)."""
    votes = [vote for judgment in judgments for vote in votes_from_judgment(judgment, policy)]
    if policy.aggregate == "none":
        pairs = [_pair(v.prompt_id, v.low, v.high, v.winner, v.margin, [v]) for v in votes]
    else:
        by_pair: dict[tuple[int, int, int], list[Vote]] = defaultdict(list)
        for vote in votes:
            by_pair[(vote.prompt_id, vote.low, vote.high)].append(vote)
        if policy.aggregate == "majority":
            pairs = [_majority(key, group) for key, group in by_pair.items()]
        else:
            pairs = _bradley_terry_pairs(by_pair, policy.bradley_terry_l2)
    kept = [pair for pair in pairs if not pair.is_tie or policy.ties == "keep"]
    return sorted(kept, key=lambda p: (p.prompt_id, p.chosen_id, p.rejected_id, p.judgment_ids))


def votes_from_judgment(judgment: JudgmentView, policy: PairPolicy) -> list[Vote]:
    """The pairwise verdicts one judgment makes under `policy` (before aggregation)."""
    if judgment.kind == "pairwise":
        found = _pairwise_verdicts(judgment, policy)
    elif judgment.kind == "ranking":
        if judgment.ranking is None:
            raise ValueError(f"ranking judgment {judgment.judgment_id} has no ranking")
        found = ranking_verdicts(judgment.ranking, policy)
    elif judgment.kind == "rating":
        if judgment.ratings is None:
            raise ValueError(f"rating judgment {judgment.judgment_id} has no ratings")
        found = _rating_verdicts(judgment.ratings, policy)
    else:
        raise ValueError(f"judgment {judgment.judgment_id} has unknown kind {judgment.kind!r}")
    votes = []
    for better, worse, margin, is_tie in found:
        low, high = min(better, worse), max(better, worse)
        winner = 0 if is_tie else (1 if better == low else -1)
        votes.append(
            Vote(
                judgment.prompt_id,
                low,
                high,
                winner,
                0.0 if is_tie else margin,
                judgment.judgment_id,
                judgment.task_id,
            )
        )
    return votes


def ranking_verdicts(
    ranking: tuple[tuple[int, ...], ...], policy: PairPolicy
) -> list[tuple[int, int, float, bool]]:
    """(better, worse, margin, is_tie) for a ranking given as groups best first."""
    flat = [item for group in ranking for item in group]
    if len(flat) != len(set(flat)):
        raise ValueError(f"a completion appears twice in the ranking {ranking}")
    found = []
    tie_groups = ranking[:1] if policy.ranking_pairs == "best_vs_rest" else ranking
    for group in tie_groups:
        found += [(x, y, 0.0, True) for x, y in combinations(group, 2)]
    for i, upper in enumerate(ranking):
        if policy.ranking_pairs == "adjacent":
            below = list(enumerate(ranking[i + 1 : i + 2], start=i + 1))
        elif policy.ranking_pairs == "best_vs_rest":
            below = list(enumerate(ranking[1:], start=1)) if i == 0 else []
        else:
            below = list(enumerate(ranking[i + 1 :], start=i + 1))
        for j, lower in below:
            margin = policy.rank_step_margin * (j - i)
            found += [(x, y, margin, False) for x in upper for y in lower]
    return found


def _pairwise_verdicts(
    judgment: JudgmentView, policy: PairPolicy
) -> list[tuple[int, int, float, bool]]:
    if len(judgment.items) < 2:
        raise ValueError(f"pairwise judgment {judgment.judgment_id} needs two items")
    a, b = judgment.items[0], judgment.items[1]
    margin = {
        None: policy.plain_margin,
        "slight": policy.slight_margin,
        "much": policy.much_margin,
    }.get(judgment.strength)
    if margin is None:
        raise ValueError(f"judgment {judgment.judgment_id} has unknown strength")
    if judgment.choice == "a":
        return [(a, b, margin, False)]
    if judgment.choice == "b":
        return [(b, a, margin, False)]
    if judgment.choice == "tie" or (judgment.choice == "both_bad" and policy.both_bad == "tie"):
        return [(a, b, 0.0, True)]
    if judgment.choice == "both_bad":
        return []
    raise ValueError(f"pairwise judgment {judgment.judgment_id} has choice {judgment.choice!r}")


def _rating_verdicts(
    scores: Mapping[int, int], policy: PairPolicy
) -> list[tuple[int, int, float, bool]]:
    found = []
    for x, y in combinations(sorted(scores), 2):
        gap = scores[x] - scores[y]
        if abs(gap) < policy.min_rating_gap:
            found.append((x, y, 0.0, True))
        else:
            better, worse = (x, y) if gap > 0 else (y, x)
            found.append((better, worse, policy.rating_point_margin * abs(gap), False))
    return found


def _pair(
    prompt_id: int, low: int, high: int, winner: int, margin: float, votes: list[Vote]
) -> Pair:
    chosen, rejected = (high, low) if winner < 0 else (low, high)
    return Pair(
        prompt_id=prompt_id,
        chosen_id=chosen,
        rejected_id=rejected,
        margin=float(margin) if winner else 0.0,
        is_tie=winner == 0,
        judgment_ids=tuple(sorted({v.judgment_id for v in votes})),
        task_ids=tuple(sorted({v.task_id for v in votes})),
        backing_ids=tuple(sorted({v.judgment_id for v in votes if v.winner == winner})),
    )


def _majority(key: tuple[int, int, int], votes: list[Vote]) -> Pair:
    prompt_id, low, high = key
    low_wins = sum(v.winner == 1 for v in votes)
    high_wins = sum(v.winner == -1 for v in votes)
    ties = len(votes) - low_wins - high_wins
    if low_wins > max(high_wins, ties):
        winner = 1
    elif high_wins > max(low_wins, ties):
        winner = -1
    else:
        winner = 0
    margin = max(0.0, sum(winner * v.winner * v.margin for v in votes) / len(votes))
    return _pair(prompt_id, low, high, winner, margin, votes)


def _bradley_terry_pairs(by_pair: dict[tuple[int, int, int], list[Vote]], l2: float) -> list[Pair]:
    by_prompt: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for key in by_pair:
        by_prompt[key[0]].append(key)
    pairs = []
    for prompt_id, keys in by_prompt.items():
        completions = sorted({c for _, low, high in keys for c in (low, high)})
        index = {c: i for i, c in enumerate(completions)}
        votes = [v for key in keys for v in by_pair[key]]
        counts = ratings.count_outcomes(
            [index[v.low] for v in votes],
            [index[v.high] for v in votes],
            [(v.winner + 1) / 2 for v in votes],
            len(completions),
        )
        try:
            strength = ratings.bradley_terry(counts, l2=l2)
        except ValueError as error:
            raise ValueError(f"prompt {prompt_id}: {error}") from error
        for key in keys:
            _, low, high = key
            gap = float(strength[index[low]] - strength[index[high]])
            winner = 0 if abs(gap) < 1e-9 else int(np.sign(gap))
            pairs.append(_pair(prompt_id, low, high, winner, abs(gap), by_pair[key]))
    return pairs
