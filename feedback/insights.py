"""Reads for the leaderboard and agreement pages and endpoints: turn a project's judgments into the
arrays that feedback.ratings and feedback.agreement work on, and their results into rows.

Imported judgments (by the "arbiter-import" user) count for the leaderboard — an imported Chatbot
Arena battle is a real comparison — but not for agreement, which is about people annotating here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from django.db.models import OuterRef, Subquery

from feedback import ratings
from feedback.models import Judgment, ModelVersion, TaskItem
from feedback.models.judgments import PairwiseChoice
from feedback.models.projects import JudgmentMode
from feedback.pairs import JudgmentView

BOOTSTRAP_ROUNDS = 1000
CONFIDENCE = 0.95
FALLBACK_L2 = 0.01  # a weak prior when the comparison graph leaves some ratings unbounded
OUTCOME = {
    PairwiseChoice.A: ratings.A_WINS,
    PairwiseChoice.B: ratings.B_WINS,
    PairwiseChoice.TIE: ratings.TIE,
    PairwiseChoice.BOTH_BAD: ratings.TIE,
}


def judgment_views(project_id: int, *, include_imported: bool = False) -> list[JudgmentView]:
    """A project's judgments as the pair and agreement maths read them, oldest first."""
    from feedback.services.imports import IMPORT_USERNAME

    judgments = Judgment.objects.filter(task__project_id=project_id)
    if not include_imported:
        judgments = judgments.exclude(annotator__username=IMPORT_USERNAME)
    rows = list(
        judgments.order_by("created_at", "pk").values_list(
            "pk", "task_id", "task__prompt_id", "annotator_id", "kind", "choice", "strength",
            "ranking", "ratings", "shown_order",
        )
    )
    items: dict[int, list[int]] = {}
    for task_id, completion_id in (
        TaskItem.objects.filter(task__project_id=project_id)
        .order_by("task_id", "position")
        .values_list("task_id", "completion_id")
    ):
        items.setdefault(task_id, []).append(completion_id)
    return [
        JudgmentView(
            judgment_id=pk,
            task_id=task_id,
            prompt_id=prompt_id,
            annotator_id=annotator_id,
            kind=kind,
            items=tuple(items.get(task_id, ())),
            choice=choice,
            strength=strength,
            ranking=tuple(tuple(group) for group in ranking) if ranking is not None else None,
            ratings={int(k): v for k, v in ratings.items()} if ratings is not None else None,
            shown_order=tuple(shown_order or ()),
        )
        for pk, task_id, prompt_id, annotator_id, kind, choice, strength, ranking, ratings, shown_order in rows
    ]


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


# --- agreement -------------------------------------------------------------------------------

MIN_SHARED_FOR_KAPPA = 5
OUTLIER_GAP = 0.15
BIAS_FLAG = 0.8  # picking the left/first output this often (or 1 - this) is flagged
BIAS_MIN_JUDGMENTS = 20
GOLD_FLAG = 0.6
GOLD_MIN_JUDGED = 5


@dataclass(frozen=True)
class AnnotatorStats:
    annotator_id: int
    annotator: str
    judgments: int
    agreement: float | None  # share of co-annotators' labels on shared tasks that match theirs
    kappa: float | None  # Cohen's kappa of their labels against co-annotators' on shared tasks
    gold_accuracy: float | None
    gold_judged: int
    position_bias: float | None  # share of decisive judgments that picked the output shown first
    is_outlier: bool


@dataclass(frozen=True)
class AgreementReport:
    judgments: int
    overlapping_tasks: int
    krippendorff_alpha: float | None
    fleiss_kappa: float | None
    percent_agreement: float | None
    annotators: list[AnnotatorStats]
    over_time: list[dict]  # {"period": "2026-W47", "agreement": 0.8, "tasks": 12}

    def as_json(self) -> dict:
        return {**asdict(self), "annotators": [asdict(a) for a in self.annotators]}


def cohen_kappa(left: list[str], right: list[str]) -> float | None:
    """Cohen (1960): (observed - chance agreement) / (1 - chance), over paired nominal labels."""
    if not left:
        return None
    labels = sorted(set(left) | set(right))
    n = len(left)
    observed = sum(x == y for x, y in zip(left, right, strict=True)) / n
    chance = sum((left.count(label) / n) * (right.count(label) / n) for label in labels)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


def fleiss_kappa(units: list[list[str]]) -> tuple[float | None, float | None]:
    """Fleiss (1971) kappa over units of two or more labels, allowing the number of raters to vary
    per unit; also returns the mean per-unit agreement P_i (percent agreement)."""
    units = [labels for labels in units if len(labels) >= 2]
    if not units:
        return None, None
    categories = sorted({label for labels in units for label in labels})
    agreement = []
    totals = dict.fromkeys(categories, 0)
    for labels in units:
        n = len(labels)
        counts = [labels.count(c) for c in categories]
        agreement.append((sum(k * k for k in counts) - n) / (n * (n - 1)))
        for c, k in zip(categories, counts, strict=True):
            totals[c] += k
    all_labels = sum(totals.values())
    p_bar = float(np.mean(agreement))
    p_e = sum((k / all_labels) ** 2 for k in totals.values())
    kappa = None if p_e >= 1.0 else (p_bar - p_e) / (1.0 - p_e)
    return kappa, p_bar


def agreement_report(project_id: int) -> AgreementReport:
    """Agreement on pairwise judgments by people (imported judgments left out)."""
    import krippendorff  # heavy import, only for this page

    from feedback.services.imports import IMPORT_USERNAME

    rows = list(
        Judgment.objects.filter(task__project_id=project_id, kind=JudgmentMode.PAIRWISE)
        .exclude(annotator__username=IMPORT_USERNAME)
        .order_by("created_at", "pk")
        .values_list(
            "task_id", "annotator_id", "annotator__username", "choice", "shown_order", "created_at",
            "task__is_gold", "task__gold_answer",
        )
    )
    first_item = dict(
        TaskItem.objects.filter(task__project_id=project_id, position=0).values_list("task_id", "completion_id")
    )
    by_task: dict[int, list[tuple[int, str]]] = {}
    for task_id, annotator_id, _, choice, *_ in rows:
        by_task.setdefault(task_id, []).append((annotator_id, choice))
    shared = {task: labels for task, labels in by_task.items() if len(labels) >= 2}

    names: dict[int, str] = {}
    counts: dict[int, int] = {}
    gold: dict[int, list[bool]] = {}
    first_picks: dict[int, list[bool]] = {}
    for task_id, annotator_id, username, choice, shown_order, _, is_gold, gold_answer in rows:
        names[annotator_id] = username
        counts[annotator_id] = counts.get(annotator_id, 0) + 1
        if is_gold and isinstance(gold_answer, dict) and "choice" in gold_answer:
            gold.setdefault(annotator_id, []).append(choice == gold_answer["choice"])
        if choice in (PairwiseChoice.A, PairwiseChoice.B) and shown_order:
            a_shown_first = shown_order[0] == first_item.get(task_id)
            first_picks.setdefault(annotator_id, []).append((choice == PairwiseChoice.A) == a_shown_first)

    mine: dict[int, list[str]] = {}
    theirs: dict[int, list[str]] = {}
    for labels in shared.values():
        for annotator_id, label in labels:
            for other_id, other in labels:
                if other_id != annotator_id:
                    mine.setdefault(annotator_id, []).append(label)
                    theirs.setdefault(annotator_id, []).append(other)

    stats = []
    for annotator_id in sorted(names, key=lambda a: names[a]):
        left, right = mine.get(annotator_id, []), theirs.get(annotator_id, [])
        agreement = sum(x == y for x, y in zip(left, right, strict=True)) / len(left) if left else None
        kappa = cohen_kappa(left, right) if len(left) >= MIN_SHARED_FOR_KAPPA else None
        golds = gold.get(annotator_id, [])
        picks = first_picks.get(annotator_id, [])
        stats.append(
            AnnotatorStats(
                annotator_id=annotator_id,
                annotator=names[annotator_id],
                judgments=counts[annotator_id],
                agreement=agreement,
                kappa=kappa,
                gold_accuracy=sum(golds) / len(golds) if golds else None,
                gold_judged=len(golds),
                position_bias=sum(picks) / len(picks) if picks else None,
                is_outlier=False,
            )
        )
    stats = flag_outliers(stats, {a: len(p) for a, p in first_picks.items()})

    kappa, percent = fleiss_kappa([[label for _, label in labels] for labels in shared.values()])
    alpha = None
    if shared:
        annotators = sorted({a for labels in shared.values() for a, _ in labels})
        codes = {label: i for i, label in enumerate(PairwiseChoice.values)}
        matrix = np.full((len(annotators), len(shared)), np.nan)
        row_of = {a: i for i, a in enumerate(annotators)}
        for column, labels in enumerate(shared.values()):
            for annotator_id, label in labels:
                matrix[row_of[annotator_id], column] = codes[label]
        if len({label for labels in shared.values() for _, label in labels}) > 1:
            alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))

    last_judged = {task_id: created for task_id, _, _, _, _, created, *_ in rows}
    weeks: dict[str, list[list[str]]] = {}
    for task_id, labels in shared.items():
        year, week, _ = last_judged[task_id].isocalendar()
        weeks.setdefault(f"{year}-W{week:02d}", []).append([label for _, label in labels])
    over_time = [
        {"period": period, "agreement": fleiss_kappa(units)[1], "tasks": len(units)}
        for period, units in sorted(weeks.items())
    ]
    return AgreementReport(
        judgments=len(rows),
        overlapping_tasks=len(shared),
        krippendorff_alpha=finite_or_none(alpha) if alpha is not None else None,
        fleiss_kappa=kappa,
        percent_agreement=percent,
        annotators=stats,
        over_time=over_time,
    )


def flag_outliers(stats: list[AnnotatorStats], decisive: dict[int, int]) -> list[AnnotatorStats]:
    """Flag annotators whose agreement is far below the others' (more than two of the others'
    standard deviations, and at least OUTLIER_GAP, under their mean), who favour one screen
    position, or who miss gold tasks."""
    flagged = []
    for s in stats:
        others = [o.agreement for o in stats if o is not s and o.agreement is not None]
        low_agreement = False
        if s.agreement is not None and len(others) >= 2:
            gap = max(2 * float(np.std(others)), OUTLIER_GAP)
            low_agreement = s.agreement < float(np.mean(others)) - gap
        biased = (
            s.position_bias is not None
            and decisive.get(s.annotator_id, 0) >= BIAS_MIN_JUDGMENTS
            and not 1 - BIAS_FLAG < s.position_bias < BIAS_FLAG
        )
        misses_gold = s.gold_judged >= GOLD_MIN_JUDGED and (s.gold_accuracy or 0.0) < GOLD_FLAG
        flagged.append(replace(s, is_outlier=bool(low_agreement or biased or misses_gold)))
    return flagged
