"""Exports of preference pairs, raw judgments, ratings and outputs as JSONL or Parquet, streamed in
constant memory, each recorded as an ExportSnapshot (filters, row count, sha256 of the bytes).

Pairs come out in TRL's formats (https://huggingface.co/docs/trl/dataset_formats):
- `standard`: {"prompt", "chosen", "rejected"} strings. A chat prompt is written as an Anthropic HH
  transcript ending in "\\n\\nAssistant:" and each answer gets a leading space, so prompt + chosen
  is the whole conversation (and HH data comes back as its original transcripts).
- `conversational`: prompt as a message list, chosen/rejected as one assistant message each.
- `hh`: {"chosen", "rejected"} full transcripts, as Anthropic HH ships them.
`margin=True` adds a "margin" column (RewardTrainer reads it). Ties are left out unless asked for
(`include_ties`), and then every row says whether it is one ("is_tie"; a tie's chosen and
rejected are in no particular order, which TRL's trainers cannot tell). Rows are ordered by pair
id, i.e. import order for imported data.

Outputs come out as the import's `completions` lines ({"prompt", "completion", "model",
"generation_settings", "token_count"}), so a file moves a project's outputs into another one.

A snapshot pins its rows by recording the highest pair/judgment/output id it saw, so the same
filters give the same bytes later (`materialise_snapshot`) unless rows were deleted meanwhile
(or, for judgments and outputs, which name their model versions, a version was renamed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import (
    Case,
    Exists,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.formats import prompt_as_messages, prompt_as_text, render_hh_prompt
from feedback.models import (
    Completion,
    ExportSnapshot,
    Judgment,
    PairJudgment,
    PreferencePair,
    Project,
    TaskItem,
)
from feedback.models.exports import ExportKind, ExportStatus
from feedback.raw_rows import json_column, streamed_rows
from feedback.services.bulk import is_postgresql
from feedback.services.export_sql import stream_pair_rows
from feedback.services.imports import IMPORT_POLICY

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "parquet")
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
MEDIA_TYPES = {"jsonl": "application/jsonl", "parquet": PARQUET_MEDIA_TYPE}
PAIR_STYLES = ("standard", "conversational", "hh")
CHUNK_ROWS = 2000  # rows per database fetch and per streamed chunk
ROW_GROUP_ROWS = 20_000  # rows per Parquet row group: bounds memory while writing
# A tie's margin in pair_rows when ties are exported (a pair's margin is never negative): its
# line says "is_tie": true, with margin 0.
TIE = -1.0


@dataclass(frozen=True)
class ExportFilters:
    """What to export. Every field narrows; empty means "no restriction"."""

    model_version_ids: tuple[int, ...] = ()
    alignment_round_id: int | None = None
    annotator_ids: tuple[int, ...] = ()
    judged_after: datetime | None = None
    judged_before: datetime | None = None
    min_agreement: float | None = None
    policies: tuple[str, ...] = ()
    include_ties: bool = False
    up_to_id: int | None = None

    def as_json(self) -> dict:
        data = asdict(self)
        for key in ("judged_after", "judged_before"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        for key in ("model_version_ids", "annotator_ids", "policies"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict) -> ExportFilters:
        values = dict(data)
        for key in ("judged_after", "judged_before"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        for key in ("model_version_ids", "annotator_ids", "policies"):
            values[key] = tuple(values.get(key) or ())
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ExportRequest:
    project_id: int
    kind: str = ExportKind.PAIRS
    format: str = "jsonl"
    style: str = "standard"
    margin: bool = False
    filters: ExportFilters = field(default_factory=ExportFilters)

    def check(self) -> None:
        if self.kind not in ExportKind.values:
            raise ServiceError(f"Export kind must be one of {', '.join(ExportKind.values)}.")
        if self.format not in FORMATS:
            raise ServiceError(f"Export format must be one of {', '.join(FORMATS)}.")
        if self.kind == ExportKind.PAIRS and self.style not in PAIR_STYLES:
            raise ServiceError(f"Pair style must be one of {', '.join(PAIR_STYLES)}.")
        agreement = self.filters.min_agreement
        if agreement is not None and not 0 <= agreement <= 1:
            raise ServiceError("The agreement threshold is a fraction between 0 and 1.")


# --- what is exported ------------------------------------------------------------------------


def judgments_matching(filters: ExportFilters) -> Q:
    """Conditions on a Judgment row from the filters that concern judgments."""
    condition = Q()
    if filters.alignment_round_id is not None:
        condition &= Q(task__alignment_round_id=filters.alignment_round_id)
    if filters.annotator_ids:
        condition &= Q(annotator_id__in=filters.annotator_ids)
    if filters.judged_after is not None:
        condition &= Q(created_at__gte=filters.judged_after)
    if filters.judged_before is not None:
        condition &= Q(created_at__lt=filters.judged_before)
    return condition


def imported_pairs_judged_between(filters: ExportFilters) -> Q:
    condition = Q(policy=IMPORT_POLICY)
    if filters.judged_after is not None:
        condition &= Q(created_at__gte=filters.judged_after)
    if filters.judged_before is not None:
        condition &= Q(created_at__lt=filters.judged_before)
    return condition


def pairs_for_export(project_id: int, filters: ExportFilters) -> QuerySet[PreferencePair]:
    pairs = PreferencePair.objects.filter(project_id=project_id)
    if filters.up_to_id is not None:
        pairs = pairs.filter(pk__lte=filters.up_to_id)
    if not filters.include_ties:
        pairs = pairs.filter(is_tie=False)
    if filters.policies:
        pairs = pairs.filter(policy__in=filters.policies)
    if filters.model_version_ids:
        pairs = pairs.filter(
            Q(chosen__model_version_id__in=filters.model_version_ids)
            | Q(rejected__model_version_id__in=filters.model_version_ids)
        )
    judgment_condition = judgments_matching(filters)
    if judgment_condition:
        # The backing pairs are listed first: as a correlated EXISTS, PostgreSQL could pick a
        # plan that took minutes for a round's few hundred pairs.
        # A pair matches through the judgments that back it, not those outvoted on it.
        backed = (
            PairJudgment.objects.filter(
                backs=True,
                judgment__in=Judgment.objects.filter(
                    judgment_condition, task__project_id=project_id
                ),
            )
            .values_list("preferencepair_id", flat=True)
            .distinct()
        )
        matched = Q(pk__in=list(backed))
        if not filters.annotator_ids and filters.alignment_round_id is None:
            # Imported TRL and HH pairs have no judgment behind them: they count as judged when
            # they were imported, by nobody, in no round.
            matched |= imported_pairs_judged_between(filters)
        pairs = pairs.filter(matched)
    if filters.min_agreement is not None:
        # Agreement of a pair: the share of all judgments on its tasks that back it.
        count = Func(F("pk"), function="COUNT")
        backing_count = (
            PairJudgment.objects.filter(preferencepair=OuterRef("pk"), backs=True)
            .annotate(n=count)
            .values("n")
        )
        task_ids = Judgment.objects.filter(pairs=OuterRef(OuterRef("pk"))).values("task_id")
        total_count = Judgment.objects.filter(task_id__in=task_ids).annotate(n=count).values("n")
        pairs = pairs.annotate(
            backing=Cast(Subquery(backing_count), FloatField()),
            total=Cast(Subquery(total_count), FloatField()),
        ).filter(
            # An imported pair is its file's only verdict (full agreement, as with one judgment).
            Q(policy=IMPORT_POLICY)
            | Q(total__gt=0, backing__gte=F("total") * filters.min_agreement)
        )
    return pairs.order_by("pk")


def judgments_for_export(project_id: int, filters: ExportFilters) -> QuerySet[Judgment]:
    judgments = Judgment.objects.filter(task__project_id=project_id).filter(
        judgments_matching(filters)
    )
    if filters.up_to_id is not None:
        judgments = judgments.filter(pk__lte=filters.up_to_id)
    if filters.model_version_ids:
        judgments = judgments.filter(
            Exists(
                TaskItem.objects.filter(
                    task_id=OuterRef("task_id"),
                    completion__model_version_id__in=filters.model_version_ids,
                )
            )
        )
    return judgments.order_by("pk")


# --- encoding --------------------------------------------------------------------------------


def pair_rows(project_id: int, filters: ExportFilters) -> Iterator[tuple]:
    """(prompt_id, prompt, texts, chosen_id, rejected_id, margin, chosen, rejected) per pair, in
    id order. `prompt` is (text, messages as JSON text or None) on the first pair of a run of
    pairs on one prompt, None on the others; `texts` ({completion id: text}) comes with it and
    holds completions of the run's prompt; `chosen`/`rejected` are None when `texts` has them.
    One streamed query on PostgreSQL (feedback/services/export_sql.py), the ORM elsewhere."""
    pairs = pairs_for_export(project_id, filters)
    if filters.include_ties:
        # A tie's margin comes as TIE (margins are never negative), so the rows keep their shape.
        pairs = pairs.annotate(
            tie_or_margin=Case(When(is_tie=True, then=Value(TIE)), default=F("margin"))
        )
    margin = "tie_or_margin" if filters.include_ties else "margin"
    if can_stream_rows():
        try:
            sql, params = pairs.values(
                "id", "prompt_id", "chosen_id", "rejected_id", margin
            ).query.sql_with_params()
        except EmptyResultSet:  # e.g. a judgment filter that no pair matches
            return iter(())
        if filters.include_ties:
            sql = f"SELECT id, prompt_id, chosen_id, rejected_id, tie_or_margin AS margin FROM ({sql}) t"  # noqa: S608 - ours
        return stream_pair_rows(sql, list(params))
    return orm_pair_rows(pairs, margin)


def orm_pair_rows(pairs: QuerySet[PreferencePair], margin: str = "margin") -> Iterator[tuple]:
    rows = (
        pairs.annotate(prompt_messages=Cast("prompt__messages", TextField()))
        .values_list(
            "prompt_id",
            "prompt__text",
            "prompt_messages",
            "chosen_id",
            "rejected_id",
            margin,
            "chosen__text",
            "rejected__text",
        )
        .iterator(chunk_size=CHUNK_ROWS)
    )
    previous = None
    for prompt_id, text, messages, chosen_id, rejected_id, margin, chosen, rejected in rows:
        is_new = prompt_id != previous
        previous = prompt_id
        prompt, texts = ((text, messages), {}) if is_new else (None, None)
        yield prompt_id, prompt, texts, chosen_id, rejected_id, margin, chosen, rejected


def can_stream_rows() -> bool:
    """Whether pairs come from export_sql's streamed query (PostgreSQL), else from the ORM."""
    return is_postgresql()


def messages_of(messages_json: str | None) -> list | None:
    return None if messages_json is None else json.loads(messages_json)


def compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# A JSONL pair line is head + answer(chosen) + MIDDLE + answer(rejected) + CLOSE + margin + "}\n":
# the head and the answer encoder depend on the prompt only, so each run of pairs on one prompt
# builds them once, and each completion text is escaped and encoded once per run, not per line.
# orjson.dumps of a string gives the bytes of json.dumps(ensure_ascii=False) (the same escapes)
# at a fifth of the cost of encode_basestring + str.encode.
Answer = Callable[[str], bytes]


def standard_prompt(text: str, messages: list | None) -> tuple[bytes, Answer]:
    head = b'{"prompt":' + orjson.dumps(prompt_as_text(text, messages)) + b',"chosen":'
    if messages is None:
        return head, orjson.dumps
    # A chat prompt ends in the assistant cue: prompt + chosen reads as the whole conversation.
    return head, lambda answer: orjson.dumps(" " + answer)


def conversational_prompt(text: str, messages: list | None) -> tuple[bytes, Answer]:
    head = (
        '{"prompt":' + compact(prompt_as_messages(text, messages)) + ',"chosen":'
        '[{"role":"assistant","content":'
    )
    return head.encode(), orjson.dumps


def hh_prompt(text: str, messages: list | None) -> tuple[bytes, Answer]:
    transcript = render_hh_prompt(text, messages) + "\n\nAssistant: "
    return b'{"chosen":', lambda answer: orjson.dumps(transcript + answer)


PAIR_PROMPTS = {
    "standard": standard_prompt,
    "conversational": conversational_prompt,
    "hh": hh_prompt,
}
MIDDLE = {
    "standard": b',"rejected":',
    "conversational": b'}],"rejected":[{"role":"assistant","content":',
    "hh": b',"rejected":',
}
CLOSE = {"standard": b"", "conversational": b"}]", "hh": b""}
MARGIN_CACHE_SIZE = 4096


def line_end(close: bytes, pair_margin: float, margin: bool, ties: bool) -> bytes:
    """What follows a line's rejected answer: the margin and tie columns asked for."""
    columns = ""
    if margin:
        columns += f',"margin":{max(pair_margin, 0.0)!r}'
    if ties:
        columns += f',"is_tie":{"true" if pair_margin == TIE else "false"}'
    return close + f"{columns}}}\n".encode()


def pair_jsonl_chunks(
    rows: Iterator[tuple], style: str, margin: bool, ties: bool = False
) -> Iterator[tuple[bytes, int]]:
    """(bytes, rows) chunks of JSONL lines for pair_rows, joined from byte pieces: per-line
    json.dumps, or even escaping each text per line, would dominate the export."""
    start_run = PAIR_PROMPTS[style]
    middle, close = MIDDLE[style], CLOSE[style]
    plain_end = close + b"}\n"
    by_margin = margin or ties
    ends: dict[float, bytes] = {}  # line endings by margin, bounded so memory stays flat
    lines: list[bytes] = []
    join = b"".join  # one join per line: 4x cheaper than joining five pieces per line per chunk
    for _, prompt, texts, chosen_id, rejected_id, pair_margin, chosen, rejected in rows:
        if prompt is not None:
            head, answer = start_run(prompt[0], messages_of(prompt[1]))
            answers = {completion_id: answer(text) for completion_id, text in texts.items()}
        first = answers[chosen_id] if chosen is None else answer(chosen)
        second = answers[rejected_id] if rejected is None else answer(rejected)
        end = plain_end
        if by_margin:
            end = ends.get(pair_margin)
            if end is None:
                if len(ends) >= MARGIN_CACHE_SIZE:
                    ends.clear()
                end = ends[pair_margin] = line_end(close, pair_margin, margin, ties)
        lines.append(join((head, first, middle, second, end)))
        if len(lines) >= CHUNK_ROWS:
            yield join(lines), len(lines)
            lines.clear()
    if lines:
        yield join(lines), len(lines)


def pairs_with_texts(rows: Iterator[tuple]) -> Iterator[tuple]:
    """(prompt text, prompt messages as JSON text, chosen, rejected, margin) per pair_rows row."""
    for _, prompt, texts, chosen_id, rejected_id, margin, chosen, rejected in rows:
        if prompt is not None:
            run_prompt, run_texts = prompt, texts
        yield (
            *run_prompt,
            run_texts[chosen_id] if chosen is None else chosen,
            run_texts[rejected_id] if rejected is None else rejected,
            margin,
        )


MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


def pair_schema(style: str, margin: bool, ties: bool = False) -> pa.Schema:
    if style == "conversational":
        columns = [
            ("prompt", pa.list_(MESSAGE)),
            ("chosen", pa.list_(MESSAGE)),
            ("rejected", pa.list_(MESSAGE)),
        ]
    elif style == "standard":
        columns = [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())]
    else:
        columns = [("chosen", pa.string()), ("rejected", pa.string())]
    if margin:
        columns.append(("margin", pa.float64()))
    if ties:
        columns.append(("is_tie", pa.bool_()))
    return pa.schema(columns)


def pair_record(row, style: str, margin: bool, ties: bool = False) -> dict:
    text, messages_json, chosen, rejected, pair_margin = row
    messages = messages_of(messages_json)
    if style == "standard":
        space = "" if messages is None else " "
        record = {
            "prompt": prompt_as_text(text, messages),
            "chosen": space + chosen,
            "rejected": space + rejected,
        }
    elif style == "conversational":
        record = {
            "prompt": prompt_as_messages(text, messages),
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    else:
        head = render_hh_prompt(text, messages) + "\n\nAssistant: "
        record = {"chosen": head + chosen, "rejected": head + rejected}
    if margin:
        record["margin"] = max(pair_margin, 0.0)
    if ties:
        record["is_tie"] = pair_margin == TIE
    return record


def judgment_records(judgments: QuerySet[Judgment]) -> Iterator[dict]:
    """The judgments, in id order, each with the outputs its task showed. Two streamed reads in
    step, the judgments and their tasks' outputs in the same order: looking the outputs up for
    each chunk of judgments took longer than all the rest (about 10,000 rows a second)."""
    postgresql = is_postgresql()
    if postgresql:
        judgments = judgments.annotate(created_text=IsoUtc("created_at"))
        with connection.cursor() as cursor:
            # Planned for every row, not the first tenth a cursor's plan favours (the outputs'
            # four joins took twice as long), and not compiled: on a read this simple the JIT
            # cost a tenth of it.
            cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            cursor.execute("SET LOCAL jit = off")
    rows = streamed_rows(
        judgments.values_list(
            "pk",
            "task_id",
            "task__prompt_id",
            "annotator__username",
            "kind",
            "choice",
            "strength",
            "ranking",
            "ratings",
            "shown_order",
            "rationale",
            "time_spent_ms",
            "flags",
            "created_text" if postgresql else "created_at",
        ),
        CHUNK_ROWS,
    )
    outputs = streamed_rows(
        judgments.order_by("pk", "task__items__position").values_list(
            "pk", "task__items__completion_id", "task__items__completion__model_version__name"
        ),
        CHUNK_ROWS,
    )
    pending = next(outputs, None)
    for (
        pk,
        task_id,
        prompt_id,
        annotator,
        kind,
        choice,
        strength,
        ranking,
        ratings,
        shown_order,
        rationale,
        time_spent_ms,
        flags,
        created_at,
    ) in rows:
        items = []
        while pending is not None and pending[0] == pk:
            items.append({"completion_id": pending[1], "model": pending[2]})
            pending = next(outputs, None)
        yield {
            "id": pk,
            "task_id": task_id,
            "prompt_id": prompt_id,
            "annotator": annotator,
            "kind": kind,
            "items": items,
            "choice": choice,
            "strength": strength,
            "ranking": json_column(ranking),
            "ratings": json_column(ratings),
            "shown_order": json_column(shown_order),
            "rationale": rationale,
            "time_spent_ms": time_spent_ms,
            "flags": json_column(flags),
            "created_at": iso_time(created_at),
        }


class IsoUtc(Func):
    """A timestamp as text in UTC, as `datetime.isoformat` writes it but with the fraction always
    there (iso_time drops a zero one). Psycopg reads timestamps in Python, through Django's time
    zone loader, and formatting them again took as long: two fifths of a judgments export's
    Python time."""

    template = (
        "to_char(%(expressions)s AT TIME ZONE 'UTC', "
        """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
    )
    output_field = TextField()


ZERO_FRACTION = ".000000+00:00"


def iso_time(value: datetime | str) -> str:
    """A timestamp column in ISO 8601, as `datetime.isoformat` writes it: from IsoUtc's text on
    PostgreSQL, from a naive UTC datetime on SQLite."""
    if isinstance(value, str):
        return value[: -len(ZERO_FRACTION)] + "+00:00" if value.endswith(ZERO_FRACTION) else value
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def judgment_schema() -> pa.Schema:
    item = pa.struct([("completion_id", pa.int64()), ("model", pa.string())])
    return pa.schema(
        [
            ("id", pa.int64()),
            ("task_id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("annotator", pa.string()),
            ("kind", pa.string()),
            ("items", pa.list_(item)),
            ("choice", pa.string()),
            ("strength", pa.string()),
            ("ranking", pa.list_(pa.list_(pa.int64()))),
            ("ratings", pa.string()),
            ("shown_order", pa.list_(pa.int64())),
            ("rationale", pa.string()),
            ("time_spent_ms", pa.int64()),
            ("flags", pa.list_(pa.string())),
            ("created_at", pa.string()),
        ]
    )


def output_records(project_id: int, filters: ExportFilters) -> Iterator[dict]:
    """The project's outputs, each as the import's `completions` line: by prompt, then in id
    order (ordering by id alone made PostgreSQL walk every project's outputs, at half the speed)."""
    outputs = Completion.objects.filter(prompt__project_id=project_id)
    if filters.model_version_ids:
        outputs = outputs.filter(model_version_id__in=filters.model_version_ids)
    if filters.up_to_id is not None:
        outputs = outputs.filter(pk__lte=filters.up_to_id)
    rows = outputs.order_by("prompt_id", "pk").values_list(
        "prompt__text",
        "prompt__messages",
        "text",
        "model_version__name",
        "generation_settings",
        "token_count",
    )
    for prompt_text, messages, text, model, generation, token_count in streamed_rows(
        rows, CHUNK_ROWS
    ):
        yield {
            "prompt": prompt_text if messages is None else json_column(messages),
            "completion": text,
            "model": model,
            "generation_settings": json_column(generation),
            "token_count": token_count,
        }


def output_schema() -> pa.Schema:
    """Parquet has no "string or message list" column: a chat prompt goes to `messages`."""
    return pa.schema(
        [
            ("prompt", pa.string()),
            ("messages", pa.list_(MESSAGE)),
            ("completion", pa.string()),
            ("model", pa.string()),
            ("generation_settings", pa.string()),
            ("token_count", pa.int64()),
        ]
    )


def output_parquet_record(record: dict) -> dict:
    chat = isinstance(record["prompt"], list)
    return {
        **record,
        "prompt": None if chat else record["prompt"],
        "messages": record["prompt"] if chat else None,
        "generation_settings": compact(record["generation_settings"]),
    }


def rating_records(project_id: int) -> list[dict]:
    from feedback.leaderboards import leaderboard  # it reads judgments; keep imports one-way

    return [row.as_record() for row in leaderboard(project_id).rows]


def rating_schema() -> pa.Schema:
    return pa.schema(
        [
            ("model_version_id", pa.int64()),
            ("model", pa.string()),
            ("games", pa.int64()),
            ("wins", pa.float64()),
            ("bt_score", pa.float64()),
            ("bt_low", pa.float64()),
            ("bt_high", pa.float64()),
            ("elo", pa.float64()),
            ("group", pa.int64()),
        ]
    )


class ParquetSink:
    """A write-only file object that hands back what pyarrow wrote since the last `drain`."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def parquet_chunks(records: Iterator[dict], schema: pa.Schema) -> Iterator[tuple[bytes, int]]:
    sink = ParquetSink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    names = schema.names
    columns: dict[str, list] = {name: [] for name in names}
    pending = 0

    def write_group() -> None:
        writer.write_table(pa.Table.from_pydict(columns, schema=schema))
        for values in columns.values():
            values.clear()

    for record in records:
        for name in names:
            columns[name].append(record[name])
        pending += 1
        if pending >= ROW_GROUP_ROWS:
            write_group()
            yield sink.drain(), pending
            pending = 0
    if pending or not writer.is_open:
        write_group()
    writer.close()
    yield sink.drain(), pending


def jsonl_chunks(lines: Iterator[bytes]) -> Iterator[tuple[bytes, int]]:
    buffer: list[bytes] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= CHUNK_ROWS:
            yield b"".join(buffer), len(buffer)
            buffer.clear()
    if buffer:
        yield b"".join(buffer), len(buffer)


def compact_lines(records: Iterator[dict]) -> Iterator[bytes]:
    return ((compact(record) + "\n").encode("utf-8") for record in records)


def encoded_chunks(request: ExportRequest, pinned: ExportFilters) -> Iterator[tuple[bytes, int]]:
    """(bytes, rows) chunks of the export."""
    if request.kind == ExportKind.PAIRS:
        rows = pair_rows(request.project_id, pinned)
        ties = pinned.include_ties
        if request.format == "jsonl":
            return pair_jsonl_chunks(rows, request.style, request.margin, ties)
        records = (
            pair_record(row, request.style, request.margin, ties) for row in pairs_with_texts(rows)
        )
        return parquet_chunks(records, pair_schema(request.style, request.margin, ties))
    if request.kind == ExportKind.JUDGMENTS:
        records = judgment_records(judgments_for_export(request.project_id, pinned))
        if request.format == "jsonl":
            return jsonl_chunks(orjson.dumps(record) + b"\n" for record in records)
        return parquet_chunks(
            (
                {**r, "ratings": None if r["ratings"] is None else compact(r["ratings"])}
                for r in records
            ),
            judgment_schema(),
        )
    if request.kind == ExportKind.OUTPUTS:
        records = output_records(request.project_id, pinned)
        if request.format == "jsonl":
            # orjson writes the same compact JSON as `compact` in a third of the time.
            return jsonl_chunks(orjson.dumps(record) + b"\n" for record in records)
        return parquet_chunks(map(output_parquet_record, records), output_schema())
    records = iter(rating_records(request.project_id))
    if request.format == "jsonl":
        return jsonl_chunks(compact_lines(records))
    return parquet_chunks(records, rating_schema())


# --- snapshots -------------------------------------------------------------------------------


def pin(request: ExportRequest) -> ExportFilters:
    """The request's filters with an id ceiling, so the snapshot can be reproduced."""
    if request.kind == ExportKind.PAIRS:
        ceiling = PreferencePair.objects.filter(project_id=request.project_id).order_by("-pk")
    elif request.kind == ExportKind.JUDGMENTS:
        ceiling = Judgment.objects.filter(task__project_id=request.project_id).order_by("-pk")
    elif request.kind == ExportKind.OUTPUTS:
        ceiling = Completion.objects.filter(prompt__project_id=request.project_id).order_by("-pk")
    else:
        return request.filters
    highest = ceiling.values_list("pk", flat=True).first() or 0
    if request.filters.up_to_id is not None:
        highest = min(highest, request.filters.up_to_id)
    return ExportFilters(**{**request.filters.__dict__, "up_to_id": highest})


def snapshot_filters(request: ExportRequest, pinned: ExportFilters) -> dict:
    return {"style": request.style, "margin": request.margin, **pinned.as_json()}


def download_name(snapshot: ExportSnapshot) -> str:
    """The file name a snapshot's bytes are downloaded and kept under (its format is one of
    FORMATS, which are also the extensions)."""
    return f"arbiter-{snapshot.kind}-{snapshot.pk}.{snapshot.format}"


@dataclass
class ExportStream:
    """An export in progress: iterate it for the bytes; the snapshot completes at the end, or
    fails if the stream is closed before then, read or not."""

    snapshot: ExportSnapshot
    request: ExportRequest
    pinned: ExportFilters
    started: Iterator[bytes] | None = field(default=None, init=False, repr=False)

    def __iter__(self) -> Iterator[bytes]:
        self.started = self.chunks()
        return self.started

    def close(self) -> None:
        """What a web server calls when the response ends. A stream never read (a client that
        hung up after the headers, as fsspec does when it asks for a size) fails its snapshot
        too, instead of leaving it running for ever."""
        if self.started is not None:
            self.started.close()  # its own end records the snapshot complete or failed
        ExportSnapshot.objects.filter(pk=self.snapshot.pk, status=ExportStatus.RUNNING).update(
            status=ExportStatus.FAILED, completed_at=timezone.now()
        )

    @property
    def content_type(self) -> str:
        return MEDIA_TYPES[self.request.format]

    @property
    def filename(self) -> str:
        return download_name(self.snapshot)

    def chunks(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        rows = size = 0
        finished = False
        source = encoded_chunks(self.request, self.pinned)
        try:
            # In a transaction, PostgreSQL streams from a plain server-side cursor; outside one,
            # Django declares it WITH HOLD, which computes every row before sending the first.
            with transaction.atomic():
                try:
                    for data, count in source:
                        digest.update(data)
                        rows += count
                        size += len(data)
                        yield data
                finally:
                    source.close()  # closes the cursor before the transaction ends
            finished = True
        finally:
            # A client that hangs up mid-download leaves a failed snapshot, never a complete one.
            status = ExportStatus.COMPLETE if finished else ExportStatus.FAILED
            ExportSnapshot.objects.filter(pk=self.snapshot.pk).update(
                status=status,
                row_count=rows,
                content_hash=digest.hexdigest() if finished else "",
                byte_size=size if finished else None,
                completed_at=timezone.now(),
            )
            self.snapshot.refresh_from_db()
            if not finished:
                logger.warning("Export %s stopped after %d rows.", self.snapshot.pk, rows)


# No export streams this long: one still running after it was left by a process that died.
ABANDONED_AFTER = timedelta(hours=24)


def fail_abandoned_exports(now: datetime | None = None) -> int:
    """Mark failed the snapshots still running ABANDONED_AFTER their start (a web server or a
    worker that died mid-export never ends them); how many."""
    cutoff = (now or timezone.now()) - ABANDONED_AFTER
    return ExportSnapshot.objects.filter(status=ExportStatus.RUNNING, created_at__lt=cutoff).update(
        status=ExportStatus.FAILED, completed_at=now or timezone.now()
    )


def check_export(request: ExportRequest) -> None:
    """Refuse an export that cannot run, as `start_export` would, without running it."""
    request.check()
    project = Project.objects.filter(pk=request.project_id).only("pair_policies").first()
    if project is None:
        raise ServiceError(f"No project with id {request.project_id}.", code="not_found")
    derived = sorted(project.pair_policies)
    if request.kind == ExportKind.PAIRS and not request.filters.policies and len(derived) > 1:
        # Each policy makes its own pairs from the same judgments: together, a pair would come
        # out once per policy, or both ways round.
        raise ServiceError(
            f"This project's pairs were derived under several policies ({', '.join(derived)}); "
            f"name those to export (policy={derived[0]}, say; imported pairs are policy "
            f"{IMPORT_POLICY})."
        )


def start_export(request: ExportRequest, *, user_id: int | None) -> ExportStream:
    """Validate an export and record its snapshot; the caller streams `chunks()`."""
    check_export(request)
    pinned = pin(request)
    snapshot = ExportSnapshot.objects.create(
        project_id=request.project_id,
        kind=request.kind,
        format=request.format,
        filters=snapshot_filters(request, pinned),
        created_by_id=user_id,
    )
    return ExportStream(snapshot, request, pinned)


def snapshot_folder() -> Path:
    folder = Path(settings.ARTIFACT_ROOT) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def file_put_in_place(path: Path) -> Iterator[BinaryIO]:
    """A file to write that appears at `path` whole or not at all: written under a name of its
    own and moved in place at the end, so readers (and a second writer of the same snapshot)
    never see half of it."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed or removed below
        dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False
    )
    try:
        with handle:
            yield handle
        # As an open() would have made it (the temporary file is private to this user): the
        # web server and the training worker may run as different users.
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def export_to_file(request: ExportRequest, *, user_id: int | None) -> tuple[ExportSnapshot, Path]:
    """Export into a file kept under ARTIFACT_ROOT/exports/ as the snapshot's stored copy: a
    pipeline then fetches exactly these bytes by the snapshot's id, as often as it likes."""
    stream = start_export(request, user_id=user_id)
    path = snapshot_folder() / stream.filename
    with file_put_in_place(path) as handle:
        for data in stream:
            handle.write(data)
    ExportSnapshot.objects.filter(pk=stream.snapshot.pk).update(path=str(path))
    stream.snapshot.path = str(path)
    return stream.snapshot, path


def export_pairs_to_file(
    *,
    project_id: int,
    filters: ExportFilters | None = None,
    style: str = "standard",
    margin: bool = False,
    format: str = "jsonl",
    user_id: int | None = None,
) -> tuple[ExportSnapshot, Path]:
    """Write pairs to a file under ARTIFACT_ROOT/exports/ and return its snapshot and path.

    Training jobs call this and record the snapshot on the model version they produce.
    """
    request = ExportRequest(
        project_id=project_id,
        kind=ExportKind.PAIRS,
        format=format,
        style=style,
        margin=margin,
        filters=filters or ExportFilters(),
    )
    return export_to_file(request, user_id=user_id)


def complete_snapshot(snapshot_id: int) -> ExportSnapshot:
    snapshot = ExportSnapshot.objects.filter(pk=snapshot_id, status=ExportStatus.COMPLETE).first()
    if snapshot is None:
        raise ServiceError(f"No complete export snapshot with id {snapshot_id}.", code="not_found")
    return snapshot


def snapshot_file_to_serve(snapshot_id: int) -> tuple[ExportSnapshot, Path]:
    """The snapshot and a file of its bytes, for downloads (a byte range at a time, maybe): the
    stored copy, trusted when it has the recorded size, since it only ever appears whole and
    checked (hashing it again for each range asked for would read the whole file each time);
    otherwise materialised."""
    snapshot = complete_snapshot(snapshot_id)
    if snapshot.path and snapshot.byte_size is not None:
        stored = Path(snapshot.path)
        with suppress(OSError):
            if stored.stat().st_size == snapshot.byte_size:
                return snapshot, stored
    path = materialise_snapshot(snapshot_id)
    snapshot.refresh_from_db()
    return snapshot, path


def materialise_snapshot(snapshot_id: int) -> Path:
    """A file holding exactly the snapshot's bytes: its stored copy, or a fresh export from its
    pinned filters, checked against its hash (and kept as the stored copy)."""
    snapshot = complete_snapshot(snapshot_id)
    if snapshot.path and Path(snapshot.path).is_file():
        digest = hashlib.sha256()
        size = 0
        with open(snapshot.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
        if digest.hexdigest() == snapshot.content_hash:
            if snapshot.byte_size is None:  # taken before sizes were recorded
                ExportSnapshot.objects.filter(pk=snapshot.pk).update(byte_size=size)
            return Path(snapshot.path)
    stored = dict(snapshot.filters)
    request = ExportRequest(
        project_id=snapshot.project_id,
        kind=snapshot.kind,
        format=snapshot.format,
        style=stored.pop("style", "standard"),
        margin=stored.pop("margin", False),
        filters=ExportFilters.from_json(stored),
    )
    request.check()
    path = snapshot_folder() / f"snapshot-{snapshot.pk}.{snapshot.format}"
    digest = hashlib.sha256()
    size = 0
    with file_put_in_place(path) as handle, transaction.atomic():
        for data, _ in encoded_chunks(request, request.filters):
            digest.update(data)
            size += len(data)
            handle.write(data)
        if digest.hexdigest() != snapshot.content_hash:
            # Raised inside: the file is not put in place.
            raise ServiceError(
                f"Snapshot {snapshot.pk}'s data has changed since it was taken (rows were edited "
                "or deleted, or a write that was still running then, an import say, has added "
                "rows below its id ceiling); export afresh.",
                code="conflict",
            )
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(path=str(path), byte_size=size)
    return path
