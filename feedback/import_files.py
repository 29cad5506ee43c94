"""Import files as lines of JSON: JSONL (plain or gzipped) as it is, and Parquet and CSV a record
at a time, so every file goes through the same line parser and readers (feedback/formats.py) and
a bad record is named by its number.

Parquet and CSV records are numbered as lines: a Parquet file's rows from 1, a CSV file's rows
from the one under the header. A CSV row whose cells do not fit the header is passed on as a
`BadRow`, which the parser names with the others.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import itertools
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from feedback.errors import ServiceError

MAX_IMPORT_BYTES = 1 << 30  # a larger file is refused before it is read; split it
MAX_LINE_BYTES = 16 << 20  # a record that long is a mistake (see stream_lines)
# Parquet is decoded a row group at a time, so a row group is what an import holds in memory;
# a small file can unpack to far more (compression), so a larger one is refused.
MAX_ROW_GROUP_BYTES = 1 << 30
PARQUET_BATCH_ROWS = 256
PARQUET_SLICE_ROWS = 64
# CSV cells that hold numbers or JSON, as JSONL would: every other cell is text. An empty cell in
# any of these, or in another column that may be left out, counts as left out (CSV has no null).
CSV_NUMBER_COLUMNS = frozenset(
    {"margin", "token_count", "winner_model_a", "winner_model_b", "winner_tie"}
)
CSV_JSON_COLUMNS = frozenset(
    {
        "metadata",
        "messages",
        "generation_settings",
        "hyperparameters",
        "metrics",
        "conversation_a",
        "conversation_b",
    }
)
CSV_OPTIONAL_COLUMNS = (
    CSV_NUMBER_COLUMNS
    | CSV_JSON_COLUMNS
    | {"model", "split", "method", "base_model", "adapter_path"}
)
CSV_DELIMITERS = (",", ";", "\t")
DECIMAL_COMMA = re.compile(r"^\s*(-?\d+),(\d+)\s*$")
# The csv module refuses a cell over 128 KiB by default; a model's answer can be longer.
csv.field_size_limit(MAX_LINE_BYTES)


@dataclass(frozen=True)
class BadRow:
    """A record that could not be made into a line; the parser names it by its number."""

    reason: str


def stream_lines(
    stream, block_size: int = 1 << 20, longest: int = MAX_LINE_BYTES
) -> Iterator[bytes]:
    """The lines of a binary stream (an upload), read a block at a time: a WSGI server's readline on
    a request body costs about 40 µs a line, ten times the whole read in blocks.

    A line past `longest` bytes stops the read: it is no JSONL record but, most often, a whole
    JSON array on one line, which would otherwise be held in memory whole."""
    pending: list[bytes] = []  # the start of a line that has not ended yet
    pending_size = 0
    number = 0  # lines yielded so far
    while block := stream.read(block_size):
        if b"\n" not in block:
            pending.append(block)
            pending_size += len(block)
            if pending_size > longest:
                raise ServiceError(
                    f"line {number + 1}: longer than {longest >> 20} MiB; nothing was imported. "
                    "JSONL has one JSON object a line: is this a JSON array (a .json file)?"
                )
            continue
        lines = (b"".join(pending) + block if pending else block).split(b"\n")
        rest = lines.pop()
        pending, pending_size = ([rest], len(rest)) if rest else ([], 0)
        number += len(lines)
        yield from lines
    if pending:
        yield b"".join(pending)


class Gunzipped:
    """A gzipped stream, unpacked as it is read; a file that is not gzip, or is cut short or
    damaged, is refused as such (a ServiceError, not a server error)."""

    def __init__(self, stream):
        self.file = gzip.GzipFile(fileobj=stream)

    def read(self, size: int = -1) -> bytes:
        try:
            return self.file.read(size)
        except (OSError, EOFError, zlib.error) as error:
            raise ServiceError(
                f"Not a readable gzip file ({error}); nothing was imported."
            ) from None


def record_line(record: dict, number: int) -> bytes:
    """A Parquet or CSV record as a JSONL line. Going through JSON (0.4 s per 100,000 TRL rows,
    in the parser thread) gives records the line's checks and types: NUL characters, dates as
    text, NaN as null. Values JSON has no type for (bytes, decimals) go as text: a reader refuses
    what it cannot use, naming the record."""
    # A copy, with the line's end: orjson's bytes keep the 4 KiB buffer it wrote into, so a chunk
    # of 20,000 short lines held 81 MiB instead of 15.
    line = orjson.dumps(record, default=str) + b"\n"
    if len(line) > MAX_LINE_BYTES:
        raise ServiceError(
            f"line {number}: longer than {MAX_LINE_BYTES >> 20} MiB as JSON; nothing was imported."
        )
    return line


def parquet_lines(stream) -> Iterator[bytes]:
    """A Parquet file's rows as lines, a batch at a time: the Hugging Face Hub stores datasets as
    Parquet, so one can be imported as it is downloaded."""
    seekable = getattr(stream, "seekable", None)
    if seekable is None or not seekable():
        # Parquet is read from its end: a request body goes to a file first (in memory up to
        # 64 MiB).
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spooled:
            shutil.copyfileobj(stream, spooled, 1 << 20)
            spooled.seek(0)
            yield from parquet_lines(spooled)
        return
    try:
        parquet = pq.ParquetFile(stream)
    except (pa.ArrowException, OSError) as error:
        raise ServiceError(
            f"Not a readable Parquet file ({error}); nothing was imported."
        ) from None
    metadata = parquet.metadata
    for index in range(metadata.num_row_groups):
        size = metadata.row_group(index).total_byte_size
        if size > MAX_ROW_GROUP_BYTES:
            raise ServiceError(
                f"Row group {index + 1} of the Parquet file unpacks to {size >> 20} MiB, over "
                f"{MAX_ROW_GROUP_BYTES >> 20} MiB; nothing was imported. Write it with smaller "
                "row groups (pyarrow: row_group_size=10_000)."
            )
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            # Made Python objects a slice at a time: a dictionary-encoded column can repeat one
            # long text in every row, tiny in the file and a gigabyte as a batch's strings.
            for start in range(0, batch.num_rows, PARQUET_SLICE_ROWS):
                for row in batch.slice(start, PARQUET_SLICE_ROWS).to_pylist():
                    number += 1
                    yield record_line(row, number)
    except (pa.ArrowException, OSError, OverflowError, ValueError) as error:
        # A damaged page, or a date Python cannot hold (pyarrow reads every column).
        raise ServiceError(
            f"The Parquet file cannot be read past row {number} ({error}); nothing was imported."
        ) from None


def text_lines(stream, block_size: int = 1 << 20) -> Iterator[str]:
    """A UTF-8 stream's text in lines that keep their ends, for the csv module: a quoted cell may
    hold line breaks, which the module joins up. Only "\\n" ends a line here (str.splitlines
    would also break at characters that CSV keeps inside a cell)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    breaks, pending = 0, ""  # line breaks decoded so far; the start of a line not ended yet
    while True:
        block = stream.read(block_size)
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as error:
            line = breaks + error.object[: error.start].count(b"\n") + 1
            raise ServiceError(
                f"The CSV file is not UTF-8 text (line {line} of the file); nothing was "
                "imported. Save it as UTF-8 (Excel: CSV UTF-8)."
            ) from None
        breaks += text.count("\n")
        lines = (pending + text).split("\n")
        pending = lines.pop()
        if len(pending) > MAX_LINE_BYTES:
            raise ServiceError(
                f"The CSV file has a line over {MAX_LINE_BYTES >> 20} MiB; nothing was imported."
            )
        yield from (line + "\n" for line in lines)
        if not block:
            break
    if pending:
        yield pending


def csv_value(column: str, cell: str, *, decimal_comma: bool = False) -> object:
    """A cell's value: text, or what a number or JSON column holds (numbers with a decimal comma
    where cells are parted by semicolons). A cell that does not parse stays text, and the
    format's reader says what it wanted."""
    if column in CSV_NUMBER_COLUMNS or column in CSV_JSON_COLUMNS:
        if decimal_comma and column in CSV_NUMBER_COLUMNS:
            cell = DECIMAL_COMMA.sub(r"\1.\2", cell)
        try:
            value = orjson.loads(cell)
        except orjson.JSONDecodeError:
            return cell
        wanted = (int, float) if column in CSV_NUMBER_COLUMNS else (dict, list)
        if isinstance(value, wanted) and not isinstance(value, bool):
            return value
    return cell


def csv_records(
    rows: Iterable[list[str]], *, decimal_comma: bool = False
) -> Iterator[dict | BadRow | None]:
    """CSV rows under their header as records (None for a blank row). Columns without a name
    (the index pandas writes first) are left out; so are empty cells past the header's end."""
    rows = iter(rows)
    header = [name.strip() for name in next(rows, [])]
    named = [(index, name) for index, name in enumerate(header) if name]
    if not named:
        raise ServiceError("The CSV file has no header row naming its columns.")
    repeated = sorted({name for _, name in named if header.count(name) > 1})
    if repeated:
        raise ServiceError(
            f"The CSV header names {', '.join(repr(n) for n in repeated)} more than once."
        )
    width = len(header)
    # What each column is, asked once, not for every cell of a hundred thousand rows.
    columns = [
        (index, name, name in CSV_OPTIONAL_COLUMNS, name in CSV_NUMBER_COLUMNS | CSV_JSON_COLUMNS)
        for index, name in named
    ]
    for row in rows:
        if not "".join(row).strip():
            yield None
            continue
        if len(row) > width and "".join(row[width:]).strip():
            yield BadRow(f"{len(row)} cells, but the header names {width} columns.")
            continue
        record = {}
        for index, name, optional, typed in columns:
            cell = row[index] if index < len(row) else ""
            if optional and not cell.strip():
                continue
            record[name] = csv_value(name, cell, decimal_comma=decimal_comma) if typed else cell
        yield record


def csv_lines(stream, block_size: int = 1 << 20) -> Iterator[bytes | BadRow]:
    """A CSV file's rows as lines, each under the header's names, as a spreadsheet or pandas
    writes them (`df.to_csv`); Kaggle ships the Chatbot Arena battles so. Cells are text, but for
    the columns that hold numbers or JSON (CSV_NUMBER_COLUMNS, CSV_JSON_COLUMNS). Cells are
    parted by commas, or by semicolons or tabs where the header has more of those (Excel writes
    semicolons where the comma is the decimal mark, and so numbers like 1,5)."""
    lines = text_lines(stream, block_size)
    header = next(lines, "")
    delimiter = max(CSV_DELIMITERS, key=header.count)  # the first of the most frequent
    reader = csv.reader(itertools.chain([header], lines), delimiter=delimiter)
    number = 0
    try:
        for record in csv_records(reader, decimal_comma=delimiter == ";"):
            number += 1
            if record is None:
                yield b""
            elif isinstance(record, BadRow):
                yield record
            else:
                yield record_line(record, number)
    except csv.Error as error:
        raise ServiceError(
            f"line {number + 1}: not readable as CSV ({error}); nothing was imported."
        ) from None


def file_lines(stream, kind: str = "jsonl", *, gzipped: bool = False) -> Iterator[bytes | BadRow]:
    """The lines of a file of `kind` ("jsonl", "csv" or "parquet"), unpacked on the fly when it
    is gzipped (Parquet compresses inside)."""
    if kind == "parquet":
        return parquet_lines(stream)
    if gzipped:
        stream = Gunzipped(stream)
    return csv_lines(stream) if kind == "csv" else stream_lines(stream)


def uploaded_lines(upload) -> Iterator[bytes | BadRow]:
    """The lines of an uploaded file (Django's UploadedFile), by its name: Parquet (.parquet), CSV
    (.csv or .tsv), else JSONL; gzipped where it ends in .gz."""
    name = upload.name.lower()
    stem = name.removesuffix(".gz")
    kind = (
        "parquet"
        if stem.endswith(".parquet")
        else "csv"
        if stem.endswith((".csv", ".tsv"))
        else "jsonl"
    )
    return file_lines(upload.file, kind, gzipped=name.endswith(".gz"))
