"""The leaderboard: a project's judgments as comparisons between model versions, rated by
Bradley-Terry with bootstrap intervals and by online Elo, with win rates and optionally style
control; read for the leaderboard page, its endpoint and the ratings export.

Imported judgments (an imported Chatbot Arena battle is a real comparison) count here.

Reading a million judgments takes seconds, so a board is cached per state of the project's
judgments, and the counts and Elo behind it are kept (RatingState) so that newer judgments are
folded in rather than everything read again; so are the comparisons with their outputs' style
(StyleState), which style control fits row by row.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

import numpy as np
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    FilteredRelation,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from feedback import ratings
from feedback.insights import finite_or_none
from feedback.models import Completion, Judgment, ModelVersion, TaskItem
from feedback.models.judgments import PairwiseChoice
from feedback.models.projects import JudgmentMode
from feedback.pairs import PairPolicy, ranking_verdicts
from feedback.raw_rows import fetched_rows, json_column
from feedback.style import STYLE_FEATURES, style_features

BOOTSTRAP_ROUNDS = 1000
CONFIDENCE = 0.95
# Cached leaderboards and rating states: bump the version when the shape of Leaderboard or
# RatingState changes, so that no process reads one of the old shape.
LEADERBOARD_CACHE_VERSION = 3
LEADERBOARD_CACHE_SECONDS = 24 * 3600
ELO_SCALE = ratings.EloScale()
FALLBACK_L2 = 0.01  # a weak prior when the comparison graph leaves some ratings unbounded
STREAM_CHUNK = 10_000  # rows per fetch of a streamed read
# Every two places of a ranking is one comparison; equal places are a tie.
RANKING_AS_COMPARISONS = PairPolicy(name="leaderboard", ranking_pairs="all", ties="keep")
OUTCOME = {
    PairwiseChoice.A: ratings.A_WINS,
    PairwiseChoice.B: ratings.B_WINS,
    PairwiseChoice.TIE: ratings.TIE,
    PairwiseChoice.BOTH_BAD: ratings.TIE,
}


@dataclass(frozen=True)
class Comparisons:
    """Model-version comparisons in judgment order: indices into `model_ids`, and (when asked
    for) the two completions each one compared."""

    model_ids: list[int]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    a_completion: np.ndarray | None = None
    b_completion: np.ndarray | None = None
    # The ranking judgment each comparison came from, -1 for a pairwise one; None: all pairwise.
    ranking: np.ndarray | None = None


def model_comparisons(
    project_id: int,
    *,
    with_completions: bool = False,
    after: int | None = None,
    up_to: int | None = None,
) -> Comparisons:
    """One comparison per pairwise judgment, and one per pair of places in a ranking, between
    completions of two different model versions; ties and "both bad" count as ties. Only the
    judgments with ids after `after` and up to `up_to`, where given."""
    judgments = Judgment.objects.filter(task__project_id=project_id)
    if after is not None:
        judgments = judgments.filter(pk__gt=after)
    if up_to is not None:
        judgments = judgments.filter(pk__lte=up_to)
    ranked = plain_rows(
        judgments.filter(kind=JudgmentMode.RANKING).values_list(
            "created_at", "pk", "task_id", "ranking"
        )
    )
    # Pairwise judgments in time order. Ranked ones are merged in by (created, id); without
    # them those keys need not leave the database.
    keys = ("created_at", "pk") if ranked else ()
    completions = ("item_a__completion_id", "item_b__completion_id") if with_completions else ()
    pairwise = (
        judgments.filter(kind=JudgmentMode.PAIRWISE)
        # Joins, not a subquery per item: a million judgments take seconds, not half a minute.
        .annotate(
            item_a=FilteredRelation("task__items", condition=Q(task__items__position=0)),
            item_b=FilteredRelation("task__items", condition=Q(task__items__position=1)),
            model_a=F("item_a__completion__model_version_id"),
            model_b=F("item_b__completion__model_version_id"),
            outcome=Case(
                *(When(choice=choice, then=Value(value)) for choice, value in OUTCOME.items()),
                output_field=FloatField(),
            ),
        )
        .filter(model_a__isnull=False, model_b__isnull=False)
        .exclude(model_a=F("model_b"))
        .order_by("created_at", "pk")
        .values_list(*keys, "model_a", "model_b", "outcome", *completions)
    )
    # (created, judgment,) model a, model b, outcome(, completion a, completion b)
    events = plain_rows(pairwise)
    from_ranking = None
    if ranked:
        events = [(created, pk, -1, *rest) for created, pk, *rest in events]
        # The ranked tasks as a subquery: a list of ids is a query parameter each, and
        # PostgreSQL takes at most 65,535 of them.
        ranked_tasks = judgments.filter(kind=JudgmentMode.RANKING).values("task_id")
        model_of = dict(
            TaskItem.objects.filter(task_id__in=ranked_tasks).values_list(
                "completion_id", "completion__model_version_id"
            )
        )
        for created, pk, _, ranking in ranked:
            ordered = tuple(tuple(group) for group in json_column(ranking))
            for better, worse, _, is_tie in ranking_verdicts(ordered, RANKING_AS_COMPARISONS):
                a, b = model_of.get(better), model_of.get(worse)
                if a is not None and b is not None and a != b:
                    outcome = ratings.TIE if is_tie else ratings.A_WINS
                    events.append(
                        (created, pk, pk, a, b, outcome, *(better, worse)[: len(completions)])
                    )
        events.sort(key=lambda event: (event[0], event[1]))
        from_ranking = np.array([event[2] for event in events], dtype=np.int64)
        events = [event[3:] for event in events]
    table = np.array(events, dtype=float).reshape(len(events), 3 + len(completions))
    model_ids, index = np.unique(table[:, :2].astype(np.int64), return_inverse=True)
    index = index.reshape(-1, 2)
    return Comparisons(
        model_ids=model_ids.tolist(),
        a=index[:, 0],
        b=index[:, 1],
        outcome=table[:, 2],
        a_completion=table[:, 3].astype(np.int64) if with_completions else None,
        b_completion=table[:, 4].astype(np.int64) if with_completions else None,
        ranking=from_ranking,
    )


def plain_rows(values: QuerySet) -> list[tuple]:
    """fetched_rows (numbers as they are, JSON as text, times as each backend gives them, which
    sort alike within a backend) with JIT compilation off: PostgreSQL spent more compiling the
    joins than it saved. SET LOCAL needs a transaction; only there, as on SQLite one would take
    the write lock."""
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic() if postgresql else nullcontext():
        if postgresql:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        return fetched_rows(values)


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
    rank: int  # among the versions of its group
    # Versions joined by comparisons, directly or through others: 1 for the largest set. Ratings
    # of two groups are not comparable (nothing relates them).
    group: int = 1
    # With length and markdown held fixed (style control); None unless asked for.
    style_score: float | None = None

    def as_record(self) -> dict:
        """The row as the ratings export writes it (ranks and style control left out)."""
        return {
            key: value for key, value in asdict(self).items() if key not in ("rank", "style_score")
        }


@dataclass(frozen=True)
class Leaderboard:
    rows: list[RatingRow]
    comparisons: int
    bootstrap_rounds: int
    confidence: float
    regularised: bool = False
    # win_rates[i][j]: observed share of row i's wins over column j (ties half); None: never met.
    win_rates: list[list[float | None]] = field(default_factory=list)
    # With style control: each style feature's effect, in log-odds per standard deviation of
    # its difference between the two outputs (None where it never differed).
    style_effects: dict[str, float | None] | None = None

    @property
    def groups(self) -> int:
        return max((row.group for row in self.rows), default=1)

    @property
    def group_starts(self) -> list[int]:
        """The indexes of the rows that start a group after the first."""
        return [i for i in range(1, len(self.rows)) if self.rows[i].group != self.rows[i - 1].group]

    def as_json(self) -> dict:
        return {
            "comparisons": self.comparisons,
            "bootstrap_rounds": self.bootstrap_rounds,
            "confidence": self.confidence,
            "regularised": self.regularised,
            "rows": [asdict(row) for row in self.rows],
            "win_rates": self.win_rates,
            "style_effects": self.style_effects,
        }


def style_key(project_id: int) -> str:
    return f"completion-style:{LEADERBOARD_CACHE_VERSION}:{project_id}"


def completion_style(project_id: int, completion_ids: np.ndarray) -> np.ndarray:
    """Style features of each completion, [len(completion_ids), len(STYLE_FEATURES)]; the ids
    are the project's judged outputs.

    An output's text never changes, so the features measured are kept for the project (ids and
    counts, about 24 bytes an output) and only outputs not measured before are read: at a
    million battles, reading and measuring every text took half of a style-controlled board."""
    unique, inverse = np.unique(completion_ids, return_inverse=True)
    table = np.zeros((unique.size, len(STYLE_FEATURES)), dtype=np.int64)
    kept_ids, kept_table = cache.get(style_key(project_id)) or (
        np.zeros(0, dtype=np.int64),
        np.zeros((0, len(STYLE_FEATURES)), dtype=np.int32),
    )
    known = np.zeros(unique.size, dtype=bool)
    if kept_ids.size:
        at = np.searchsorted(kept_ids, unique).clip(max=kept_ids.size - 1)
        known = kept_ids[at] == unique
        table[known] = kept_table[at[known]]
    missing = unique[~known]
    if missing.size:
        # Most of them unknown (a first read): one streamed read of them all; else by id.
        whole = missing.size > kept_ids.size
        features = measured_outputs(project_id, missing.tolist(), whole=whole)
        # An output deleted since the comparisons were read (its task too) counts as plain.
        plain = (0,) * len(STYLE_FEATURES)
        table[~known] = [features.get(pk, plain) for pk in missing.tolist()]
        ids = np.concatenate([kept_ids, missing])
        order = np.argsort(ids, kind="stable")
        measured = np.concatenate([kept_table, table[~known].astype(np.int32)])
        cache.set(style_key(project_id), (ids[order], measured[order]), LEADERBOARD_CACHE_SECONDS)
    return table[inverse].astype(float)


def measured_outputs(project_id: int, ids: list[int], *, whole: bool) -> dict[int, tuple[int, ...]]:
    """style_features of the outputs `ids`: with `whole`, in one streamed read of every judged
    task's outputs (for most of them, cheaper than lists of ids), else by id."""
    features: dict[int, tuple[int, ...]] = {}
    if whole:
        # Not lists of ids in chunks: at a million battles, building and parsing those lists took
        # longer than measuring the texts. Read from the task items, each joined to its output by
        # key, rather than outputs IN (a join): under statistics that had most tables at one row,
        # that semi-join ran for minutes on 2,000 outputs.
        judged = (
            TaskItem.objects.filter(task__project_id=project_id)
            .filter(Exists(Judgment.objects.filter(task_id=OuterRef("task_id"))))
            .values_list("completion_id", "completion__text")
            .order_by()
        )
        for pk, text in judged.iterator(chunk_size=STREAM_CHUNK):
            features[pk] = style_features(text)
    # Those the streamed read missed too (a judgment taken back meanwhile).
    rest = [pk for pk in ids if pk not in features]
    for start in range(0, len(rest), STREAM_CHUNK):
        chunk = rest[start : start + STREAM_CHUNK]
        for pk, text in Completion.objects.filter(pk__in=chunk).values_list("pk", "text"):
            features[pk] = style_features(text)
    return features


@dataclass(frozen=True)
class Judged:
    """What a project's judgments add up to: their count and the sum of their ids (ids are never
    reused, so no change leaves both as they were), the newest id and the latest time. For the
    judgments up to `since` (a state's newest), the same count and sum, and the earliest time
    after it."""

    count: int
    id_sum: int
    newest: int | None
    latest: datetime | None
    count_since: int = 0
    id_sum_since: int = 0
    earliest_after: datetime | None = None
    since: int | None = None


def judged(project_id: int, since: int | None = None) -> Judged:
    up_to = Q(pk__lte=since if since is not None else 0)
    found = Judgment.objects.filter(task__project_id=project_id).aggregate(
        count=Count("pk"),
        id_sum=Coalesce(Sum("pk"), 0),
        newest=Max("pk"),
        latest=Max("created_at"),
        count_since=Count("pk", filter=up_to),
        id_sum_since=Coalesce(Sum("pk", filter=up_to), 0),
        earliest_after=Min("created_at", filter=~up_to),
    )
    return Judged(**found, since=since)


@dataclass(frozen=True)
class Covered:
    """The judgments a kept state was read from, so that a later read can tell whether it still
    holds, or newer judgments can be folded into it."""

    judgments: int = 0  # the project's judgments it covers ...
    id_sum: int = 0  # ... the sum of their ids ...
    newest: int | None = None  # ... up to this id
    latest: datetime | None = None  # the latest time among them

    @staticmethod
    def covered(now: Judged) -> dict:
        """The fields of a state that covers `now`."""
        return {
            "judgments": now.count,
            "id_sum": now.id_sum,
            "newest": now.newest,
            "latest": now.latest,
        }

    def covers(self, now: Judged) -> bool:
        return (self.judgments, self.id_sum, self.newest) == (now.count, now.id_sum, now.newest)

    def can_fold(self, now: Judged) -> bool:
        """Whether the judgments it covers are all still there, unchanged in number and ids,
        and every newer one comes after them in time (Elo is folded in judgment order)."""
        return (
            (self.judgments, self.id_sum) == (now.count_since, now.id_sum_since)
            and (now.newest or 0) >= (self.newest or 0)
            and (
                self.latest is None
                or now.earliest_after is None
                or now.earliest_after >= self.latest
            )
        )


@dataclass(frozen=True)
class RatingState(Covered):
    """A project's comparisons as the leaderboard reads them, by model version id: outcome
    counts (all that Bradley-Terry needs) and online Elo so far. Kept between reads, so newer
    judgments are folded in rather than all of them read again (seconds at a million)."""

    comparisons: int = 0
    # (model id, a higher model id, the first's outcome) -> comparisons
    cells: dict[tuple[int, int, float], int] = field(default_factory=dict)
    elo: dict[int, float] = field(default_factory=dict)
    # The cells of a ranking that made several comparisons (sorted) -> rankings that made them:
    # the bootstrap draws each ranking's comparisons together (ratings.Clusters).
    patterns: dict[tuple[tuple[int, int, float], ...], int] = field(default_factory=dict)

    def folded(self, found: Comparisons, now: Judged) -> RatingState:
        """This state with newer comparisons (read up to now.newest) folded in."""
        cells = dict(self.cells)
        elo = dict(self.elo)
        ids = found.model_ids
        if found.a.size:
            counts = ratings.count_outcomes(found.a, found.b, found.outcome, len(ids))
            for first, second, outcome, count in zip(
                counts.first.tolist(),
                counts.second.tolist(),
                counts.outcome.tolist(),
                counts.count.tolist(),
                strict=True,
            ):
                key = (ids[first], ids[second], outcome)
                cells[key] = cells.get(key, 0) + count
            start = [elo.get(model_id, ELO_SCALE.initial) for model_id in ids]
            after = ratings.elo_ratings(found.a, found.b, found.outcome, len(ids), start=start)
            elo.update(zip(ids, after.tolist(), strict=True))
        return RatingState(
            **self.covered(now),
            comparisons=self.comparisons + int(found.a.size),
            cells=cells,
            elo=elo,
            patterns=self.with_patterns(found),
        )

    def with_patterns(self, found: Comparisons) -> dict[tuple[tuple[int, int, float], ...], int]:
        patterns = dict(self.patterns)
        if found.ranking is None:
            return patterns
        by_ranking: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
        ids = found.model_ids
        ranked = np.flatnonzero(found.ranking >= 0)  # pairwise comparisons (-1) have none
        for ranking, a, b, outcome in zip(
            found.ranking[ranked].tolist(),
            found.a[ranked].tolist(),
            found.b[ranked].tolist(),
            found.outcome[ranked].tolist(),
            strict=True,
        ):
            x, y = ids[a], ids[b]
            by_ranking[ranking].append((x, y, outcome) if x < y else (y, x, 1.0 - outcome))
        for cells in by_ranking.values():
            if len(cells) > 1:
                key = tuple(sorted(cells))
                patterns[key] = patterns.get(key, 0) + 1
        return patterns

    def counts(self) -> tuple[list[int], ratings.OutcomeCounts]:
        """The model ids in order and the outcome counts, indexed by that order."""
        model_ids = sorted(self.elo)
        index = {model_id: i for i, model_id in enumerate(model_ids)}
        cells = sorted(
            (index[a], index[b], outcome, n) for (a, b, outcome), n in self.cells.items()
        )
        first, second, outcome, count = (np.array(column) for column in zip(*cells, strict=True))
        return model_ids, ratings.OutcomeCounts(
            n_players=len(model_ids),
            first=first.astype(np.int64),
            second=second.astype(np.int64),
            outcome=outcome.astype(float),
            count=count.astype(np.int64),
        )

    def clusters(self, model_ids: list[int], counts: ratings.OutcomeCounts) -> ratings.Clusters:
        """The kept ranking patterns over the cells of `counts` (from counts())."""
        if not self.patterns:
            return ratings.Clusters((), np.zeros(0, dtype=np.int64))
        index = {model_id: i for i, model_id in enumerate(model_ids)}
        flat = [cell for pattern in self.patterns for cell in pattern]
        cells = ratings.cells_of(
            counts,
            [index[a] for a, _, _ in flat],
            [index[b] for _, b, _ in flat],
            [outcome for _, _, outcome in flat],
        )
        ends = np.cumsum([len(pattern) for pattern in self.patterns])
        return ratings.Clusters(
            tuple(np.split(cells, ends[:-1])), np.array(list(self.patterns.values()))
        )


def no_rows(*columns: int, dtype=np.float32) -> np.ndarray:
    return np.zeros((0, *columns), dtype=dtype)


@dataclass(frozen=True)
class StyleState(Covered):
    """Every comparison with the style of its two outputs, as style control fits them: per-row
    data (about 36 bytes a comparison), not counts. Kept like RatingState, so newer judgments
    are appended (their outputs measured) rather than a million read again."""

    model_a: np.ndarray = field(default_factory=lambda: no_rows(dtype=np.int64))  # version ids
    model_b: np.ndarray = field(default_factory=lambda: no_rows(dtype=np.int64))
    outcome: np.ndarray = field(default_factory=no_rows)
    # (a - b) / (a + b) of each style feature, before standardising (which depends on them all)
    style: np.ndarray = field(default_factory=lambda: no_rows(len(STYLE_FEATURES)))

    def folded(self, project_id: int, found: Comparisons, now: Judged) -> StyleState:
        """This state with newer comparisons (read with their completions) appended."""
        ids = np.asarray(found.model_ids, dtype=np.int64)
        n = found.a.size
        features = completion_style(
            project_id, np.concatenate([found.a_completion, found.b_completion])
        )
        style = ratings.style_feature_difference(features[:n], features[n:], standardize=False)
        return StyleState(
            **self.covered(now),
            model_a=np.concatenate([self.model_a, ids[found.a]]),
            model_b=np.concatenate([self.model_b, ids[found.b]]),
            outcome=np.concatenate([self.outcome, found.outcome.astype(np.float32)]),
            style=np.concatenate([self.style, style.astype(np.float32)]),
        )

    def fitted(self, l2: float) -> tuple[list[int], np.ndarray, dict[str, float | None]]:
        """The model version ids, each one's strength (natural log-odds) with style held fixed,
        and each feature's effect."""
        model_ids, index = np.unique(
            np.concatenate([self.model_a, self.model_b]), return_inverse=True
        )
        covariates = ratings.standardized(self.style.astype(float))
        # A feature that never differs (no markdown anywhere) has no effect to estimate.
        varies = covariates.std(axis=0) > 0
        n = self.model_a.size
        fit = ratings.bradley_terry_with_covariates(
            index[:n],
            index[n:],
            self.outcome.astype(float),
            covariates[:, varies],
            model_ids.size,
            l2=l2,
        )
        effects = iter(fit.coefficients.tolist())
        return (
            model_ids.tolist(),
            fit.strength,
            {
                name: next(effects) if varied else None
                for name, varied in zip(STYLE_FEATURES, varies.tolist(), strict=True)
            },
        )


def style_state_key(project_id: int) -> str:
    return f"style-state:{LEADERBOARD_CACHE_VERSION}:{project_id}"


def style_state(project_id: int, now: Judged) -> StyleState:
    """The project's style state as of `now` (read for another state: asked again for this
    one's), kept for the next read; as rating_state."""
    kept = cache.get(style_state_key(project_id)) or StyleState()
    if kept.covers(now):
        return kept
    if kept.newest != now.since:
        now = judged(project_id, since=kept.newest)
    if not kept.can_fold(now):
        kept = StyleState()
    found = model_comparisons(
        project_id, with_completions=True, after=kept.newest, up_to=now.newest
    )
    state = kept.folded(project_id, found, now)
    cache.set(style_state_key(project_id), state, LEADERBOARD_CACHE_SECONDS)
    return state


def with_style_control(board: Leaderboard, style: StyleState) -> Leaderboard:
    """The board with each version's rating with length and markdown held fixed."""
    if not board.rows:
        return board
    # Groups that never met leave the strengths' offsets between them free: the prior pins them.
    model_ids, strength, effects = style.fitted(
        FALLBACK_L2 if board.regularised or board.groups > 1 else 0.0
    )
    score = dict(zip(model_ids, ratings.to_elo(strength).tolist(), strict=True))
    return replace(
        board,
        rows=[replace(row, style_score=score.get(row.model_version_id)) for row in board.rows],
        style_effects=effects,
    )


def state_key(project_id: int) -> str:
    return f"rating-state:{LEADERBOARD_CACHE_VERSION}:{project_id}"


def rating_state(project_id: int, now: Judged, kept: RatingState | None) -> RatingState:
    """The project's rating state as of `now`: the `kept` one, with the newer judgments folded
    in where it can be, else read whole; kept for the next read."""
    if kept is not None and kept.covers(now):
        return kept
    if kept is None or not kept.can_fold(now):
        kept = RatingState()
    # A judgment written or taken back between `now`'s query and this read leaves the state's
    # count and id sum off from what it holds; the next read then finds them changed and reads
    # everything again.
    found = model_comparisons(project_id, after=kept.newest, up_to=now.newest)
    state = kept.folded(found, now)
    cache.set(state_key(project_id), state, LEADERBOARD_CACHE_SECONDS)
    return state


def leaderboard(
    project_id: int, *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0, style_control: bool = False
) -> Leaderboard:
    """Bradley-Terry ratings (Elo points) with bootstrap intervals, online Elo, and win rates;
    with `style_control`, also each version's rating with length and markdown held fixed.

    Reading a million judgments takes seconds; telling whether any changed, a fraction of one.
    So a board is cached per state of the project's judgments, and a new state folds the newer
    judgments into the counts and Elo kept from the last one (RatingState). Style control reads
    them all. Model names are read fresh: a version may be renamed."""
    kept = cache.get(state_key(project_id))
    now = judged(project_id, since=kept.newest if kept is not None else None)
    key = (
        f"leaderboard:{LEADERBOARD_CACHE_VERSION}:{project_id}:{rounds}:{seed}:{style_control}:"
        f"{now.count}:{now.id_sum}:{now.newest}"
    )
    board = cache.get(key)
    if board is None:
        state = rating_state(project_id, now, kept)
        board = board_from_state(state, rounds=rounds, seed=seed)
        if style_control:
            board = with_style_control(board, style_state(project_id, now))
        cache.set(key, board, LEADERBOARD_CACHE_SECONDS)
    names = dict(
        ModelVersion.objects.filter(
            pk__in=[row.model_version_id for row in board.rows]
        ).values_list("pk", "name")
    )
    return replace(
        board, rows=[replace(row, model=names[row.model_version_id]) for row in board.rows]
    )


def computed_leaderboard(
    project_id: int, *, rounds: int, seed: int, style_control: bool
) -> Leaderboard:
    """The leaderboard from all of the project's judgments, read now (what the kept states,
    folded, must always agree with)."""
    now = judged(project_id)
    found = model_comparisons(project_id, with_completions=style_control)
    board = board_from_state(RatingState().folded(found, now), rounds=rounds, seed=seed)
    if not style_control:
        return board
    return with_style_control(board, StyleState().folded(project_id, found, now))


def fitted_with_intervals(
    counts: ratings.OutcomeCounts, clusters: ratings.Clusters, *, rounds: int, seed: int
) -> tuple[ratings.BradleyTerryRatings, bool]:
    """Bootstrap Bradley-Terry of one group's counts, and whether it needed the weak prior
    (some version never both beaten and beaten by others: its maximum likelihood is infinite)."""
    settings = {"rounds": rounds, "confidence": CONFIDENCE, "seed": seed, "clusters": clusters}
    try:
        return ratings.bootstrap_bradley_terry(counts, **settings), False
    except ValueError:
        return ratings.bootstrap_bradley_terry(counts, l2=FALLBACK_L2, **settings), True


def board_from_state(state: RatingState, *, rounds: int, seed: int) -> Leaderboard:
    """The leaderboard of a rating state."""
    if len(state.elo) < 2 or not state.comparisons:
        return Leaderboard([], state.comparisons, rounds, CONFIDENCE)
    model_ids, counts = state.counts()
    clusters = state.clusters(model_ids, counts)
    n = len(model_ids)
    # Each group of versions joined by comparisons is fitted on its own, around 1000: nothing
    # relates one group's ratings to another's, and fitted together they would need the prior.
    components = ratings.comparison_groups(counts)
    rating, lower, upper, rank = (np.empty(n) for _ in range(4))
    regularised = False
    for component in range(components.max() + 1):
        members = np.flatnonzero(components == component)
        fit, prior = fitted_with_intervals(
            counts.among(members),
            clusters.among(counts.cells_among(members)),
            rounds=rounds,
            seed=seed,
        )
        rating[members], lower[members], upper[members] = fit.rating, fit.lower, fit.upper
        rank[members] = fit.rank
        regularised |= prior
    wins = ratings.win_matrix(counts)
    games = wins + wins.T
    names = dict(ModelVersion.objects.filter(pk__in=model_ids).values_list("pk", "name"))
    # Groups numbered largest first (then by their best rating), each listed whole.
    sizes = np.bincount(components)
    best = {c: -rating[components == c].max() for c in range(sizes.size)}
    number = {c: k + 1 for k, c in enumerate(sorted(best, key=lambda c: (-sizes[c], best[c])))}
    rows = [
        RatingRow(
            model_version_id=model_id,
            model=names[model_id],
            games=int(round(games[i].sum())),
            wins=float(wins[i].sum()),
            bt_score=float(rating[i]),
            bt_low=float(lower[i]),
            bt_high=float(upper[i]),
            elo=float(state.elo[model_id]),
            rank=int(rank[i]),
            group=number[components[i]],
        )
        for i, model_id in enumerate(model_ids)
    ]
    order = sorted(range(n), key=lambda i: (rows[i].group, -rows[i].bt_score))
    rates = ratings.win_rate_matrix(counts)
    return Leaderboard(
        rows=[rows[i] for i in order],
        comparisons=state.comparisons,
        bootstrap_rounds=rounds,
        confidence=CONFIDENCE,
        regularised=regularised,
        win_rates=[[finite_or_none(rates[i, j]) for j in order] for i in order],
    )
