"""Reads for the leaderboard and agreement pages and endpoints: turn a project's judgments into the
arrays that feedback.ratings and feedback.agreement work on, and their results into rows.

Imported judgments (by the "arbiter-import" user) count for the leaderboard — an imported Chatbot
Arena battle is a real comparison — but not for agreement, which is about people annotating here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from django.db.models import OuterRef, Subquery

from feedback import ratings
from feedback.models import Judgment, ModelVersion, TaskItem
from feedback.models.judgments import PairwiseChoice
from feedback.models.projects import JudgmentMode

BOOTSTRAP_ROUNDS = 1000
CONFIDENCE = 0.95
FALLBACK_L2 = 0.01  # a weak prior when the comparison graph leaves some ratings unbounded
OUTCOME = {
    PairwiseChoice.A: ratings.A_WINS,
    PairwiseChoice.B: ratings.B_WINS,
    PairwiseChoice.TIE: ratings.TIE,
    PairwiseChoice.BOTH_BAD: ratings.TIE,
}


def finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class Comparisons:
    """Model-version comparisons in judgment order: indices into `model_ids`."""

    model_ids: list[int]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray


def model_comparisons(project_id: int) -> Comparisons:
    """One comparison per pairwise judgment, and one per pair of places in a ranking, between
    completions of two different model versions; ties and "both bad" count as ties."""
    first_model = TaskItem.objects.filter(task_id=OuterRef("task_id"), position=0).values(
        "completion__model_version_id"
    )
    second_model = TaskItem.objects.filter(task_id=OuterRef("task_id"), position=1).values(
        "completion__model_version_id"
    )
    pairwise = (
        Judgment.objects.filter(task__project_id=project_id, kind=JudgmentMode.PAIRWISE)
        .annotate(model_a=Subquery(first_model), model_b=Subquery(second_model))
        .filter(model_a__isnull=False, model_b__isnull=False)
        .order_by("created_at", "pk")
        .values_list("created_at", "pk", "model_a", "model_b", "choice")
    )
    events = [
        (created, pk, a, b, OUTCOME[choice]) for created, pk, a, b, choice in pairwise if a != b
    ]
    ranked = list(
        Judgment.objects.filter(task__project_id=project_id, kind=JudgmentMode.RANKING).values_list(
            "created_at", "pk", "task_id", "ranking"
        )
    )
    if ranked:
        model_of = dict(
            TaskItem.objects.filter(task_id__in={row[2] for row in ranked}).values_list(
                "completion_id", "completion__model_version_id"
            )
        )
        for created, pk, _, ranking in ranked:
            places = [[model_of.get(cid) for cid in group] for group in ranking]
            found: list[tuple[int | None, int | None, float]] = []
            for i, group in enumerate(places):
                found += [(a, b, ratings.TIE) for x, a in enumerate(group) for b in group[x + 1 :]]
                found += [(a, b, ratings.A_WINS) for lower in places[i + 1 :] for a in group for b in lower]
            events += [
                (created, pk, a, b, outcome)
                for a, b, outcome in found
                if a is not None and b is not None and a != b
            ]
        events.sort(key=lambda event: (event[0], event[1]))
    model_ids = sorted({m for event in events for m in event[2:4]})
    index = {model_id: i for i, model_id in enumerate(model_ids)}
    return Comparisons(
        model_ids=model_ids,
        a=np.array([index[e[2]] for e in events], dtype=np.int64),
        b=np.array([index[e[3]] for e in events], dtype=np.int64),
        outcome=np.array([e[4] for e in events], dtype=float),
    )


@dataclass(frozen=True)
class RatingRow:
    model_version_id: int
    model: str
    games: int
    wins: float
    bt_score: float
    bt_low: float
    bt_high: float
    elo: float
    rank: int

    def as_record(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "rank"}


@dataclass(frozen=True)
class Leaderboard:
    rows: list[RatingRow]
    comparisons: int
    bootstrap_rounds: int
    confidence: float
    regularised: bool = False
    # win_rates[i][j]: observed share of row i's wins over column j (ties half); None: never met.
    win_rates: list[list[float | None]] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "comparisons": self.comparisons,
            "bootstrap_rounds": self.bootstrap_rounds,
            "confidence": self.confidence,
            "regularised": self.regularised,
            "rows": [asdict(row) for row in self.rows],
            "win_rates": self.win_rates,
        }


def leaderboard(project_id: int, *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> Leaderboard:
    """Bradley-Terry ratings (Elo points) with bootstrap intervals, online Elo, and win rates."""
    found = model_comparisons(project_id)
    n = len(found.model_ids)
    if n < 2 or found.a.size == 0:
        return Leaderboard([], int(found.a.size), rounds, CONFIDENCE)
    counts = ratings.count_outcomes(found.a, found.b, found.outcome, n)
    regularised = False
    try:
        fit = ratings.bootstrap_bradley_terry(counts, rounds=rounds, confidence=CONFIDENCE, seed=seed)
    except ValueError:
        regularised = True
        fit = ratings.bootstrap_bradley_terry(
            counts, rounds=rounds, confidence=CONFIDENCE, seed=seed, l2=FALLBACK_L2
        )
    elo = ratings.elo_ratings(found.a, found.b, found.outcome, n)
    wins = ratings.win_matrix(counts)
    games = wins + wins.T
    names = dict(ModelVersion.objects.filter(pk__in=found.model_ids).values_list("pk", "name"))
    rows = [
        RatingRow(
            model_version_id=model_id,
            model=names[model_id],
            games=int(round(games[i].sum())),
            wins=float(wins[i].sum()),
            bt_score=float(fit.rating[i]),
            bt_low=float(fit.lower[i]),
            bt_high=float(fit.upper[i]),
            elo=float(elo[i]),
            rank=int(fit.rank[i]),
        )
        for i, model_id in enumerate(found.model_ids)
    ]
    order = sorted(range(n), key=lambda i: -rows[i].bt_score)
    rates = ratings.win_rate_matrix(counts)
    return Leaderboard(
        rows=[rows[i] for i in order],
        comparisons=int(found.a.size),
        bootstrap_rounds=rounds,
        confidence=CONFIDENCE,
        regularised=regularised,
        win_rates=[[finite_or_none(rates[i, j]) for j in order] for i in order],
    )
