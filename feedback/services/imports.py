"""Bulk import of JSONL: prompts, model versions, completions, and preference data (TRL, Anthropic
HH, Chatbot Arena battles). See feedback/formats.py for how each format maps onto the model, and
feedback/import_files.py for how Parquet and CSV files become lines.

A file is all or nothing: if any line is bad, the import is refused with every bad line named
(ServiceError.details) and nothing is kept. The file streams through in chunks of lines, validated
in plain Python and written (COPY on PostgreSQL) inside one transaction, which a bad line anywhere
rolls back.

Imported preference data is stored so that everything downstream (pairs, exports, leaderboards)
reads the shapes it already knows. Each line becomes a prompt (deduplicated by content) and two
completions, the first one "a". A TRL or HH line is a pair already: it becomes a PreferencePair
under the "import" policy with the line's margin, and nothing more (its provenance is the policy
and the completions' import batch). An Arena battle is a verdict between two models, which the
leaderboard reads as a judgment: it becomes a completed pairwise AnnotationTask with a Judgment by
the "arbiter-import" user (a / b / tie / both_bad) and, unless it is a tie, a pair linked to that
judgment. Exports of the "import" policy read the pairs back in import order, so a file
round-trips exactly (what is not kept: extra keys on a line and on chat messages; prompts that
differ only in leading or trailing whitespace count as one, as everywhere in Arbiter).
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.formats import (
    PREFERENCE_FORMATS,
    READERS,
    CompletionRecord,
    LineError,
    ModelVersionRecord,
    PairRecord,
    PromptRecord,
    detect_format,
)
from feedback.hash_filter import HashFilter
from feedback.import_files import BadRow
from feedback.models import (
    AnnotationTask,
    Completion,
    ImportBatch,
    Judgment,
    ModelVersion,
    PreferencePair,
    Project,
    Prompt,
    TaskItem,
)
from feedback.models.tasks import TaskStatus
from feedback.services.bulk import (
    insert_rows,
    is_postgresql,
    json_value,
    lock_referenced,
    may_skip_triggers,
    references_vouched_for,
    reserve_ids,
)
from feedback.services.projects import IMPORT_USERNAME
from feedback.services.tasks import TASK_COLUMNS
from feedback.wording import counted, one_or_many

T = TypeVar("T")
IMPORT_POLICY = "import"
EMPTY_LIST = json_value([])
FORMATS = tuple(READERS)
LOOKUP_CHUNK = 5000
# Lines parsed and written at a time: big enough that per-chunk queries and COPY starts cost
# little, small enough that memory stays flat however long the file.
CHUNK_LINES = 20_000
# The first chunk is small: PostgreSQL waits for it, idle, and then writes while the rest is parsed.
FIRST_CHUNK_LINES = 2_000
# A chunk's lines hold at most about this much (plus one line, at most MAX_LINE_BYTES).
CHUNK_BYTES = 64 << 20


@dataclass
class ChunkPrompts:
    """A chunk's prompts once looked up: the ids of those the project has, by content hash, and
    the new ones to write."""

    records: list[PromptRecord]
    known: dict[str, int]
    fresh: dict[str, PromptRecord]


def decided_records(records: list[PairRecord]) -> list[int]:
    """The indexes of the records that name a winner: each becomes a pair (ties do not)."""
    return [i for i, r in enumerate(records) if r.choice in ("a", "b")]


@dataclass
class ImportResult:
    batch: ImportBatch | None  # None after a dry run: nothing was kept
    format: str
    lines: int
    created: dict[str, int] = field(default_factory=dict)  # or would create, in a dry run


def import_user():
    """The user that imported judgments belong to; it cannot log in."""
    user, created = get_user_model().objects.get_or_create(
        username=IMPORT_USERNAME, defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.is_active or user.has_usable_password():
        # A person took the name (before it was reserved): the battles would be theirs to see
        # and take back, in every project.
        raise ServiceError(
            f"The account {IMPORT_USERNAME!r} belongs to a person, not to Arbiter's imports; "
            "rename it (Django admin), then import the battles again."
        )
    return user


@contextmanager
def read_ahead(items: Iterator[T]) -> Iterator[Iterator[T]]:
    """`items`, produced by a thread one item ahead of the consumer. An import parses a chunk
    (Python) while PostgreSQL writes the one before, instead of one waiting for the other. An
    error in the thread is raised to the consumer; a consumer that stops early stops it."""
    handoff: queue.Queue = queue.Queue(maxsize=1)
    stopped = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        while not stopped.is_set():
            with suppress(queue.Full):
                handoff.put(entry, timeout=0.1)
                return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            offer((done, error))

    def consume() -> Iterator[T]:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item

    thread = threading.Thread(target=produce, name="import-read-ahead", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stopped.set()
        thread.join()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: records are acyclic, but each collection while 100k of
    them pile up rescans them all (a fifth of the parse)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SwitchInterval:
    """Python's thread switch interval, shortened while any user holds it; the last to leave
    restores it (the interval is process-wide, and imports may run side by side in threads)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.lock = threading.Lock()
        self.users = 0
        self.saved = sys.getswitchinterval()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.lock:
            if self.users == 0:
                self.saved = sys.getswitchinterval()
                sys.setswitchinterval(self.seconds)
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0:
                    sys.setswitchinterval(self.saved)


# While the parser thread runs, the writer waits for the GIL after each query and COPY flush,
# up to the switch interval (5 ms by default), with PostgreSQL idle meanwhile. Handing it back
# within half a millisecond: in-process 100k-line TRL imports, 6 rounds alternating, 4.03 -> 3.80 s.
QUICK_GIL_HANDOFF = SwitchInterval(0.0005)


class BadLines:
    """A file's bad lines by reason: each reason once, with the lines that have it (runs of
    consecutive lines as ranges, "lines 2-100000: ..."), so a million lines in the wrong format
    make one message, not a million held in memory and sent back. Past MAX_REASONS reasons, or
    MAX_RUNS runs of one, the rest are counted, not listed."""

    MAX_REASONS = 1000
    MAX_RUNS = 1000

    def __init__(self):
        self.count = 0
        self.runs: dict[str, list[list[int]]] = {}  # reason -> [first, last] line numbers
        self.unlisted = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def add(self, number: int, reason: str) -> None:
        self.count += 1
        runs = self.runs.get(reason)
        if runs is None:
            if len(self.runs) < self.MAX_REASONS:
                self.runs[reason] = [[number, number]]
                return
        elif runs[-1][1] == number - 1:
            runs[-1][1] = number
            return
        elif len(runs) < self.MAX_RUNS:
            runs.append([number, number])
            return
        self.unlisted += 1

    def messages(self) -> list[str]:
        listed = []
        for reason, runs in self.runs.items():
            where = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
            listed.append(f"{'line' if runs == [[runs[0][0]] * 2] else 'lines'} {where}: {reason}")
        if self.unlisted:
            listed.append(f"{counted(self.unlisted, 'more bad lines')}, not listed.")
        return listed


def next_chunk(lines: Iterator[T], count: int) -> list[T]:
    """Up to `count` lines, fewer once they hold CHUNK_BYTES."""
    chunk: list[T] = []
    held = 0
    for line in lines:
        chunk.append(line)
        held += 0 if isinstance(line, BadRow) else len(line)
        if len(chunk) >= count or held >= CHUNK_BYTES:
            break
    return chunk


class LineParser:
    """Validates a file's lines a chunk at a time, numbering lines across chunks and keeping every
    error, so a refusal names all the bad lines however the file was cut."""

    def __init__(self, format: str):
        if format != "auto" and format not in READERS:
            raise ServiceError(
                f"Unknown import format {format!r}; use one of auto, {', '.join(FORMATS)}."
            )
        self.format = format
        self.reader = READERS.get(format)
        self.errors = BadLines()
        self.count = 0

    def chunks(self, lines: Iterable[bytes | str | BadRow]) -> Iterator[list]:
        """The records of each CHUNK_LINES lines, or of the lines that fill CHUNK_BYTES first
        (a gzipped file of long lines unpacks to gigabytes in fewer lines), fewer where lines
        are bad or blank."""
        lines, size = iter(lines), FIRST_CHUNK_LINES
        while chunk := next_chunk(lines, size):
            yield self.parse(chunk)
            size = CHUNK_LINES

    def parse(self, lines: list[bytes | str | BadRow]) -> list:
        records: list = []
        errors = self.errors
        for number, raw in enumerate(lines, start=self.count + 1):
            if isinstance(raw, BadRow):
                errors.add(number, raw.reason)
                continue
            if number == 1:
                # Windows editors start UTF-8 files with a byte order mark; JSON allows ignoring it.
                raw = raw.removeprefix(b"\xef\xbb\xbf" if isinstance(raw, bytes) else "\ufeff")
            if not raw.strip():
                continue  # blank lines (a trailing newline, say) carry nothing
            if (b"\\u0000" if isinstance(raw, bytes) else "\\u0000") in raw:
                errors.add(number, "contains a NUL character (\\u0000), which cannot be stored.")
                continue
            try:
                # orjson parses a line in a fifth of json's time, and refuses what JSON does not
                # allow (NaN, lone surrogates) that json.loads takes, and that could not be stored.
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                errors.add(number, f"not valid JSON ({error}).")
                continue
            if not isinstance(record, dict):
                errors.add(
                    number,
                    "expected a JSON object"
                    + (
                        ", got an array (JSONL has one object a line, not a list of them)."
                        if isinstance(record, list)
                        else "."
                    ),
                )
                continue
            if self.reader is None:
                detected = detect_format(record)
                if detected is None:
                    raise ServiceError(
                        f"line {number}: cannot tell the format from its keys; name it "
                        f"({', '.join(FORMATS)})."
                    )
                self.format, self.reader = detected, READERS[detected]
            try:
                records.append(self.reader(record))
            except LineError as error:
                errors.add(number, str(error))
        self.count += len(lines)
        return records

    def refusal(self) -> ServiceError:
        bad = self.errors.count
        return ServiceError(
            f"{bad} of {counted(self.count, 'lines')} {one_or_many(bad, 'is', 'are')} invalid; "
            f"nothing was imported. Fix {one_or_many(bad, 'it', 'them')} and retry.",
            details=self.errors.messages(),
        )


def import_jsonl(
    *,
    project_id: int,
    user_id: int | None,
    lines: Iterable[bytes | str | BadRow],
    format: str = "auto",
    source: str = "",
    dry_run: bool = False,
) -> ImportResult:
    """Import a JSONL file into a project, all or nothing.

    The file streams through in chunks, each written as soon as it is parsed, so memory stays flat
    however long the file is. One transaction holds them all: a bad line anywhere stops the
    writing (the rest is still read, to name every bad line) and the transaction is rolled back.

    `dry_run` imports the file and rolls it back: the same refusals (the database's clashes
    too) and what it would create, with nothing kept."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise ServiceError(f"No project with id {project_id}.", code="not_found")
    parser = LineParser(format)
    try:
        # A dry run is the import in a transaction rolled back at its end (the import's own is
        # then a savepoint inside it).
        with transaction.atomic() if dry_run else nullcontext():
            writer = write_chunks(project, parser, lines, user_id, source)
            if dry_run:
                transaction.set_rollback(True)
    except IntegrityError as error:
        # Every line was validated, so only a concurrent write can break a constraint: a prompt
        # with the same content committed to the project while this import ran, say.
        constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
        raise ServiceError(
            "Another write to this project clashed with the import"
            + (f" ({constraint})" if constraint else "")
            + "; nothing was imported. Retry.",
            code="conflict",
        ) from error
    return ImportResult(
        batch=None if dry_run else writer.batch,
        format=writer.format,
        lines=parser.count,
        created=writer.created,
    )


def write_chunks(
    project: Project,
    parser: LineParser,
    lines: Iterable[bytes | str | BadRow],
    user_id: int | None,
    source: str,
) -> ImportWriter:
    """Parse and write the file chunk by chunk in one transaction (see import_jsonl)."""
    writer: ImportWriter | None = None
    with (
        gc_paused(),
        QUICK_GIL_HANDOFF.held(),
        transaction.atomic(),
        ExitStack() as vouched,
        read_ahead(parser.chunks(lines)) as chunks,
    ):
        for records in chunks:
            if parser.errors or not records:
                continue
            if writer is None:
                writer = ImportWriter.start(project, parser.format, user_id, source)
                # From here on every row written references rows this import wrote or locked
                # (the project, the import user, and the prompts and model versions it finds),
                # so per-row foreign-key checks are left out (feedback/services/bulk.py). Once
                # per import, not per chunk: each switch is a round trip.
                vouched.enter_context(references_vouched_for(writer.skips_triggers))
            writer.write(records)
        if parser.errors:
            raise parser.refusal()
        if writer is None:
            raise ServiceError("The file has no records.")
        writer.finish(parser.count)
    return writer


class ImportWriter:
    """Writes validated records of one batch; ids are reserved first so rows can link up."""

    def __init__(self, project: Project, batch: ImportBatch):
        self.project = project
        self.batch = batch
        self.format = batch.format
        self.written = 0  # records written so far: numbers what later chunks write
        self.model_names: set[str] = set()
        self.annotator_id = import_user().pk if self.format == "arena" else None
        # For battles' tasks and judgments; prompts, completions and pairs get the database's.
        self.now = timezone.now()
        self.created: dict[str, int] = {}
        self.skips_triggers = may_skip_triggers()
        # In a project without prompts, the only ones a line can match are those this import
        # wrote: the filter says which of a chunk's may be, and only those are looked up. A
        # prompt someone else commits to the project meanwhile is then a clash for the whole
        # import, not only between a lookup and its write: a conflict to retry (the retry
        # looks every prompt up).
        self.written_prompts = (
            None if Prompt.objects.filter(project=project).exists() else HashFilter()
        )

    @classmethod
    def start(cls, project: Project, format: str, user_id: int | None, source: str) -> ImportWriter:
        """A writer with its batch row, once the first records tell the format."""
        if format in PREFERENCE_FORMATS and not project.pairwise_enabled:
            raise ServiceError(
                f"Project {project.name!r} does not collect pairwise judgments; enable them to "
                "import preference data."
            )
        batch = ImportBatch.objects.create(
            project=project, source=source[:500], format=format, created_by_id=user_id
        )
        writer = cls(project, batch)
        # The rows written next reference these without foreign-key triggers (import_jsonl).
        lock_referenced(Project, [project.pk])
        if writer.annotator_id is not None:
            lock_referenced(get_user_model(), [writer.annotator_id])
        return writer

    def write(self, records: list) -> None:
        """Write one chunk of validated records."""
        if self.format == "prompts":
            self.write_prompts(records)
        elif self.format == "model_versions":
            self.write_model_versions(records)
        elif self.format == "completions":
            self.write_completions(records)
        elif self.format == "arena":
            self.write_battles(records)
        else:
            self.write_pairs(records)
        self.written += len(records)

    def finish(self, line_count: int) -> None:
        self.batch.line_count = line_count
        self.batch.made = self.created
        self.batch.save(update_fields=["line_count", "made"])

    def count(self, what: str, number: int) -> None:
        self.created[what] = self.created.get(what, 0) + number

    def known_prompt_ids(self, hashes: list[str], *, referenced: bool) -> dict[str, int]:
        """Ids of the project's prompts with these content hashes, locked if other rows will
        reference them (a lock costs a write to each row)."""
        if is_postgresql():
            # One text parameter split in the database: Django's IN with thousands of
            # placeholders spends seconds building the SQL, and psycopg adapting a list of 100k
            # strings as an array takes half a second; hex hashes hold no separator. Sorted, as
            # the index scan wants them. The array stays a constant, though the planner estimates
            # each hash (4% of an import's database time): as a parameter, a project the
            # statistics call small got a plan comparing each of its prompts with every hash
            # (94 s for 100k lines).
            with connection.cursor() as cursor:
                cursor.execute(
                    f'SELECT content_hash, id FROM "{Prompt._meta.db_table}" '  # noqa: S608 - ours
                    "WHERE project_id = %s AND content_hash = ANY(string_to_array(%s, ','))"
                    + (" FOR KEY SHARE" if referenced else ""),
                    [self.project.pk, ",".join(sorted(hashes))],
                )
                return dict(cursor.fetchall())
        known: dict[str, int] = {}
        for start in range(0, len(hashes), LOOKUP_CHUNK):
            known.update(
                Prompt.objects.filter(
                    project=self.project, content_hash__in=hashes[start : start + LOOKUP_CHUNK]
                ).values_list("content_hash", "id")
            )
        return known

    def find_prompts(self, prompts: list[PromptRecord], *, referenced: bool = True) -> ChunkPrompts:
        """A chunk's prompts looked up: the project's existing ones are reused (and locked when
        `referenced` by the rows written next), the others are new."""
        hashes = list(dict.fromkeys(p.content_hash for p in prompts))
        if self.written_prompts is not None:
            hashes = self.written_prompts.maybe_added(hashes)
        known = self.known_prompt_ids(hashes, referenced=referenced) if hashes else {}
        fresh: dict[str, PromptRecord] = {}
        for prompt in prompts:
            if prompt.content_hash not in known:
                fresh.setdefault(prompt.content_hash, prompt)
        return ChunkPrompts(prompts, known, fresh)

    def add_prompts(self, found: ChunkPrompts, ids: list[int]) -> list[int]:
        """Write the chunk's new prompts under `ids` (reserved for them); return the id of each
        record's prompt."""
        known, fresh = found.known, found.fresh
        known.update(zip(fresh, ids, strict=True))
        if self.written_prompts is not None:
            self.written_prompts.add(list(fresh))
        batch_id, project_id = self.batch.pk, self.project.pk

        def prompt_rows():
            # Written in hash order (ids stay in file order): the unique (project, content_hash)
            # index then grows at one end instead of at random pages, a third of the COPY's
            # cost. Sorting the hashes alone: sorting (hash, record) pairs is five times slower.
            for h in sorted(fresh):
                p = fresh[h]
                yield (
                    known[h],
                    project_id,
                    p.text,
                    None if p.messages is None else json_value(p.messages),
                    h,
                    json_value(p.metadata),
                    p.split,
                    batch_id,
                )

        insert_rows(
            Prompt,
            (
                "id",
                "project_id",
                "text",
                "messages",
                "content_hash",
                "metadata",
                "split",
                "import_batch_id",
            ),
            prompt_rows(),
        )
        self.count("prompts", len(fresh))
        return [known[p.content_hash] for p in found.records]

    def model_version_ids(self, names: Iterable[str]) -> dict[str, int]:
        """Ids of the named model versions, creating the missing ones as 'imported'."""
        wanted = set(names)
        known = dict(
            ModelVersion.objects.filter(project=self.project, name__in=wanted).values_list(
                "name", "id"
            )
        )
        lock_referenced(ModelVersion, known.values())
        missing = sorted(wanted - set(known))
        ModelVersion.objects.bulk_create(
            ModelVersion(
                project=self.project, name=name, method="imported", import_batch=self.batch
            )
            for name in missing
        )
        known.update(
            ModelVersion.objects.filter(project=self.project, name__in=missing).values_list(
                "name", "id"
            )
        )
        self.count("model_versions", len(missing))
        return known

    def write_prompts(self, records: list[PromptRecord]) -> None:
        found = self.find_prompts(records, referenced=False)
        self.add_prompts(found, reserve_ids({Prompt: len(found.fresh)})[Prompt])

    def write_model_versions(self, records: list[ModelVersionRecord]) -> None:
        names = [r.name for r in records]
        counts = Counter(names)
        # Names from earlier chunks are in the table by now: call them repeated, not existing.
        repeated = sorted({n for n in names if counts[n] > 1 or n in self.model_names})
        existing = sorted(
            set(
                ModelVersion.objects.filter(project=self.project, name__in=names).values_list(
                    "name", flat=True
                )
            )
            - self.model_names
        )
        self.model_names.update(names)
        if repeated or existing:
            details = [f"model version {n!r} appears more than once in the file." for n in repeated]
            details += [f"model version {n!r} exists already in this project." for n in existing]
            raise ServiceError(
                "Some model versions clash; nothing was imported.", details=details, code="conflict"
            )
        ModelVersion.objects.bulk_create(
            ModelVersion(
                project=self.project,
                name=r.name,
                base_model=r.base_model,
                method=r.method,
                adapter_path=r.adapter_path,
                hyperparameters=r.hyperparameters,
                metrics=r.metrics,
                import_batch=self.batch,
            )
            for r in records
        )
        self.count("model_versions", len(records))

    def write_completions(self, records: list[CompletionRecord]) -> None:
        found = self.find_prompts([r.prompt for r in records])
        models_by_name = self.model_version_ids(r.model for r in records if r.model)
        reserved = reserve_ids({Prompt: len(found.fresh), Completion: len(records)})
        prompt_ids = self.add_prompts(found, reserved[Prompt])
        ids = reserved[Completion]
        batch_id = self.batch.pk
        insert_rows(
            Completion,
            (
                "id",
                "prompt_id",
                "model_version_id",
                "text",
                "generation_settings",
                "token_count",
                "import_batch_id",
            ),
            (
                (
                    cid,
                    pid,
                    models_by_name.get(r.model) if r.model else None,
                    r.text,
                    json_value(r.generation_settings),
                    r.token_count,
                    batch_id,
                )
                for cid, pid, r in zip(ids, prompt_ids, records, strict=True)
            ),
        )
        self.count("completions", len(records))

    def write_pair_completions(
        self, records: list[PairRecord], prompt_ids: list[int], completion_ids: list[int]
    ) -> None:
        """Write each record's two completions under `completion_ids`, a then b per record."""
        names = {name for r in records for name in (r.model_a, r.model_b) if name}
        models_by_name = self.model_version_ids(names) if names else {}
        batch_id = self.batch.pk

        def completion_rows():
            for i, r in enumerate(records):
                for offset, (text, model) in enumerate(
                    ((r.a_text, r.model_a), (r.b_text, r.model_b))
                ):
                    yield (
                        completion_ids[2 * i + offset],
                        prompt_ids[i],
                        models_by_name[model] if model else None,
                        text,
                        batch_id,
                    )

        insert_rows(
            Completion,
            ("id", "prompt_id", "model_version_id", "text", "import_batch_id"),
            completion_rows(),
        )
        self.count("completions", 2 * len(records))

    def write_preference_pairs(
        self,
        records: list[PairRecord],
        prompt_ids: list[int],
        completion_ids: list[int],
        decided: list[int],
        pair_ids: list[int],
    ) -> None:
        """A pair under `pair_ids` for each decided record (the indexes in `decided`)."""
        project_id = self.project.pk

        def pair_rows():
            for pair_id, i in zip(pair_ids, decided, strict=True):
                r = records[i]
                a, b = completion_ids[2 * i], completion_ids[2 * i + 1]
                chosen, rejected = (a, b) if r.choice == "a" else (b, a)
                yield (
                    pair_id,
                    project_id,
                    prompt_ids[i],
                    chosen,
                    rejected,
                    r.margin or 0.0,
                    False,
                    IMPORT_POLICY,
                )

        insert_rows(
            PreferencePair,
            (
                "id",
                "project_id",
                "prompt_id",
                "chosen_id",
                "rejected_id",
                "margin",
                "is_tie",
                "policy",
            ),
            pair_rows(),
        )
        self.count("pairs", len(decided))

    def write_pairs(self, records: list[PairRecord]) -> None:
        """TRL and HH lines: each is a preference pair already, so it becomes a prompt, two
        completions and a PreferencePair; a task and a judgment saying "chosen won" would add
        five rows a line and nothing that is not in the pair."""
        found = self.find_prompts([r.prompt for r in records])
        decided = decided_records(records)
        ids = reserve_ids(
            {
                Prompt: len(found.fresh),
                Completion: 2 * len(records),
                PreferencePair: len(decided),
            }
        )
        prompt_ids = self.add_prompts(found, ids[Prompt])
        self.write_pair_completions(records, prompt_ids, ids[Completion])
        self.write_preference_pairs(
            records, prompt_ids, ids[Completion], decided, ids[PreferencePair]
        )

    def write_battles(self, records: list[PairRecord]) -> None:
        """Chatbot Arena battles: a verdict between two models (ties too), which the leaderboard
        reads as a judgment, so each becomes a completed pairwise task with a judgment by the
        import user, and a pair (linked to it) unless it is a tie."""
        n = len(records)
        found = self.find_prompts([r.prompt for r in records])
        decided = decided_records(records)
        links = PreferencePair.judgments.through
        ids = reserve_ids(
            {
                Prompt: len(found.fresh),
                Completion: 2 * n,
                AnnotationTask: n,
                TaskItem: 2 * n,
                Judgment: n,
                PreferencePair: len(decided),
                links: len(decided),
            }
        )
        prompt_ids = self.add_prompts(found, ids[Prompt])
        completion_ids = ids[Completion]
        self.write_pair_completions(records, prompt_ids, completion_ids)
        task_ids, item_ids, judgment_ids = ids[AnnotationTask], ids[TaskItem], ids[Judgment]
        project_id, batch_id, now = self.project.pk, self.batch.pk, self.now
        annotator_id, first = self.annotator_id, self.written + 1
        insert_rows(
            AnnotationTask,
            (*TASK_COLUMNS, "import_batch_id"),
            (
                (
                    task_ids[i],
                    project_id,
                    prompt_ids[i],
                    "pairwise",
                    1,
                    1,
                    1,
                    TaskStatus.COMPLETE.value,
                    0,
                    False,
                    now,
                    batch_id,
                )
                for i in range(n)
            ),
        )
        insert_rows(
            TaskItem,
            ("id", "task_id", "completion_id", "position"),
            ((item_ids[k], task_ids[k // 2], completion_ids[k], k % 2) for k in range(2 * n)),
        )
        key = f"import-{batch_id}-"
        insert_rows(
            Judgment,
            (
                "id",
                "task_id",
                "annotator_id",
                "kind",
                "choice",
                "shown_order",
                "rationale",
                "flags",
                "idempotency_key",
                "created_at",
            ),
            (
                (
                    judgment_ids[i],
                    task_ids[i],
                    annotator_id,
                    "pairwise",
                    r.choice,
                    json_value([completion_ids[2 * i], completion_ids[2 * i + 1]]),
                    "",
                    EMPTY_LIST,
                    f"{key}{first + i}",
                    now,
                )
                for i, r in enumerate(records)
            ),
        )
        pair_ids = ids[PreferencePair]
        self.write_preference_pairs(records, prompt_ids, completion_ids, decided, pair_ids)
        insert_rows(
            links,
            ("id", "preferencepair_id", "judgment_id"),
            zip(ids[links], pair_ids, (judgment_ids[i] for i in decided), strict=True),
        )
        self.count("tasks", n)
        self.count("judgments", n)
