"""Reads for the agreement page and endpoint, and the judgments as the pair and agreement maths
read them: turn a project's judgments into what feedback.pairs and feedback.agreement work on,
and their results into rows. (The leaderboard is feedback.leaderboards.)

Imported judgments (by the "arbiter-import" user) are left out of agreement, which is about
people annotating here; they count for the leaderboard.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import orjson
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Count, Max, QuerySet, Sum, TextField
from django.db.models.functions import Cast, Coalesce, ExtractIsoYear, ExtractWeek

from feedback import agreement
from feedback.models import AnnotationTask, Judgment, TaskItem
from feedback.pairs import JudgmentView
from feedback.selectors import gold_checks


def people_judgments(project_id: int, *, include_imported: bool = False) -> QuerySet[Judgment]:
    """The project's judgments, those by the import user left out unless asked for."""
    from feedback.services.projects import IMPORT_USERNAME

    judgments = Judgment.objects.filter(task__project_id=project_id)
    if not include_imported:
        importer = get_user_model().objects.filter(username=IMPORT_USERNAME).values("pk")
        judgments = judgments.exclude(annotator__in=importer)
    return judgments


def judgment_views(project_id: int, *, include_imported: bool = False) -> list[JudgmentView]:
    """A project's judgments as the pair and agreement maths read them, oldest first."""
    judgments = people_judgments(project_id, include_imported=include_imported)
    # JSON columns come as text and go through orjson: Django's decoding of them (json, per
    # value) took a third of the read at 100,000 judgments.
    rows = judgments.order_by("created_at", "pk").values_list(
        "pk",
        "task_id",
        "task__prompt_id",
        "annotator_id",
        "kind",
        "choice",
        "strength",
        *(Cast(name, TextField()) for name in ("ranking", "ratings", "shown_order")),
    )
    items: dict[int, list[int]] = {}
    # The judged tasks' outputs only: a project may hold a million imported battles.
    for task_id, completion_id in (
        TaskItem.objects.filter(task__in=judgments.values("task_id"))
        .order_by("task_id", "position")
        .values_list("task_id", "completion_id")
    ):
        items.setdefault(task_id, []).append(completion_id)
    loads = orjson.loads
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
            ranking=tuple(tuple(group) for group in loads(ranking))
            if ranking is not None
            else None,
            ratings={int(k): v for k, v in loads(ratings).items()} if ratings is not None else None,
            shown_order=tuple(loads(shown_order)) if shown_order is not None else (),
        )
        for pk, task_id, prompt_id, annotator_id, kind, choice, strength, ranking, ratings, shown_order in rows
    ]


def weeks_last_judged(project_id: int) -> dict[int, str]:
    """The ISO week ("2026-W47") of each judged task's last judgment by a person."""
    last = (
        people_judgments(project_id)
        .values("task_id")
        .annotate(last=Max("created_at"))
        .annotate(year=ExtractIsoYear("last"), week=ExtractWeek("last"))
        .values_list("task_id", "year", "week")
        .order_by()
    )
    return {task_id: f"{year}-W{week:02d}" for task_id, year, week in last}


def finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# --- agreement -------------------------------------------------------------------------------

MIN_SHARED_FOR_KAPPA = 5  # units two annotators must share before their kappa means much
# Bump the version when AgreementReport's shape changes, so that no process reads an old one.
AGREEMENT_CACHE_VERSION = 2
AGREEMENT_CACHE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class AnnotatorStats:
    annotator_id: int
    annotator: str
    judgments: int
    agreement: float | None  # share of co-annotators' verdicts on shared pairs that match theirs
    consensus: float | None  # agreement with the other annotators' majority, leave-one-out
    kappa: float | None  # mean Cohen's kappa with each co-annotator sharing enough pairs
    gold_accuracy: float | None
    gold_judged: int
    position_bias: float | None  # share of decisive pairwise judgments won by the left output
    is_outlier: bool


@dataclass(frozen=True)
class AgreementReport:
    judgments: int
    overlapping_units: int  # pairs of completions judged by two or more annotators
    krippendorff_alpha: float | None  # ordinal, over verdicts on pairs of completions
    pairwise_alpha: float | None  # nominal, over the choices made in pairwise tasks
    ranking_alpha: float | None  # ordinal, over the places given in ranking tasks
    percent_agreement: float | None
    mean_kappa: float | None
    annotators: list[AnnotatorStats]
    over_time: list[dict]  # {"period": "2026-W47", "agreement": 0.8, "tasks": 12}

    def as_json(self) -> dict:
        return {**asdict(self), "annotators": [asdict(a) for a in self.annotators]}


def gold_answers(project_id: int) -> dict[int, agreement.GoldAnswer]:
    """The project's gold answers by task, with their checks (feedback.selectors.gold_checks):
    only those score, not the judgments the answers were decided from."""
    checks = gold_checks(project_id)
    answers = {}
    for task_id, answer in AnnotationTask.objects.filter(
        project_id=project_id, is_gold=True
    ).values_list("pk", "gold_answer"):
        scored = frozenset(checks.get(task_id, ()))
        if isinstance(answer, dict) and answer.get("choice"):
            answers[task_id] = agreement.GoldAnswer(choice=answer["choice"], checks=scored)
        elif isinstance(answer, dict) and answer.get("ranking"):
            answers[task_id] = agreement.GoldAnswer(
                ranking=tuple(tuple(g) for g in answer["ranking"]), checks=scored
            )
    return answers


def agreement_state(project_id: int, gold: dict[int, agreement.GoldAnswer]) -> str:
    """What the agreement report depends on, in a few bytes: people's judgments (written or taken
    back, never changed in place) by their count, id sum and newest id, and the gold answers."""
    found = people_judgments(project_id).aggregate(
        count=Count("pk"), id_sum=Coalesce(Sum("pk"), 0), newest=Max("pk")
    )
    # Sorted all the way down: a set's repr follows the order its items went in.
    canonical = sorted(
        (task_id, a.choice, a.ranking, sorted(a.checks)) for task_id, a in gold.items()
    )
    gold_digest = hashlib.blake2b(repr(canonical).encode(), digest_size=8).hexdigest()
    return f"{found['count']}:{found['id_sum']}:{found['newest']}:{gold_digest}"


def agreement_report(project_id: int) -> AgreementReport:
    """Agreement between the people who judged the project (imported judgments left out): on
    verdicts about pairs of completions, so pairwise, ranking and rating judgments all count.

    Seconds of work at 100,000 judgments, so the report is cached per agreement_state; names are
    read fresh, as a user may be renamed."""
    gold = gold_answers(project_id)
    state = agreement_state(project_id, gold)
    key = f"agreement:{AGREEMENT_CACHE_VERSION}:{project_id}:{state}"
    report = cache.get(key)
    if report is None:
        report = computed_agreement_report(project_id, gold)
        # A judgment written or taken back while the report was read would file it under a
        # state it does not match.
        if agreement_state(project_id, gold_answers(project_id)) == state:
            cache.set(key, report, AGREEMENT_CACHE_SECONDS)
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[row.annotator_id for row in report.annotators])
        .values_list("pk", "username")
    )
    rows = [
        replace(row, annotator=names.get(row.annotator_id, str(row.annotator_id)))
        for row in report.annotators
    ]
    return replace(report, annotators=sorted(rows, key=lambda row: row.annotator))


def computed_agreement_report(
    project_id: int, gold: dict[int, agreement.GoldAnswer]
) -> AgreementReport:
    """The agreement report read now; annotators are named by agreement_report."""
    views = judgment_views(project_id)
    verdicts = agreement.verdicts_of(views)
    table = agreement.verdict_table(verdicts)
    shared_units = int((table.labelled().sum(axis=0) >= 2).sum()) if table.values.size else 0
    kappas = agreement.cohen_kappa_by_pair(table, min_shared=MIN_SHARED_FOR_KAPPA)
    quality = agreement.annotator_quality(views, gold, table=table)
    rows = []
    for q in quality:
        own = [k for pair, k in kappas.items() if q.annotator_id in pair and math.isfinite(k)]
        rows.append(
            AnnotatorStats(
                annotator_id=q.annotator_id,
                annotator="",
                judgments=q.judgments,
                agreement=finite_or_none(q.agreement),
                consensus=finite_or_none(q.consensus_agreement),
                kappa=float(np.mean(own)) if own else None,
                gold_accuracy=finite_or_none(q.gold_accuracy),
                gold_judged=q.gold_tasks,
                position_bias=finite_or_none(q.left_win_rate),
                is_outlier=q.is_outlier,
            )
        )
    finite_kappas = [k for k in kappas.values() if math.isfinite(k)]
    return AgreementReport(
        judgments=len(views),
        overlapping_units=shared_units,
        krippendorff_alpha=finite_or_none(agreement.krippendorff_alpha(table, "ordinal"))
        if shared_units
        else None,
        percent_agreement=finite_or_none(agreement.percent_agreement(table))
        if shared_units
        else None,
        # Per kind too, each on its own scale: a choice among four in a pairwise task is a
        # category (nominal), a place in a ranking is ordered (ordinal). None until some task of
        # that kind has two judgments that could differ.
        pairwise_alpha=finite_or_none(
            agreement.krippendorff_alpha(agreement.pairwise_labels(views), "nominal")
        ),
        ranking_alpha=finite_or_none(
            agreement.krippendorff_alpha(agreement.ranking_labels(views), "ordinal")
        ),
        mean_kappa=float(np.mean(finite_kappas)) if finite_kappas else None,
        annotators=rows,
        over_time=agreement_by_week(weeks_last_judged(project_id), verdicts),
    )


def agreement_by_week(weeks: dict[int, str], verdicts: list[agreement.Verdict]) -> list[dict]:
    """Percent agreement on the tasks whose last judgment fell in each ISO week (`weeks`: from
    weeks_last_judged; `verdicts`: the judgments' verdicts_of)."""
    tasks_by_week: dict[str, set[int]] = {}
    for task_id, week in weeks.items():
        tasks_by_week.setdefault(week, set()).add(task_id)
    found = []
    for period, tasks in sorted(tasks_by_week.items()):
        table = agreement.verdict_table(v for v in verdicts if v[1] in tasks)
        shared = table.values.size and (table.labelled().sum(axis=0) >= 2).any()
        value = finite_or_none(agreement.percent_agreement(table)) if shared else None
        found.append({"period": period, "agreement": value, "tasks": len(tasks)})
    return found
