"""Import files as lines: JSONL blocks, Parquet rows and CSV rows, and the bounds on each."""

import csv
import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedback import import_files
from feedback.errors import ServiceError
from feedback.import_files import BadRow, csv_lines, stream_lines


def test_stream_lines_splits_across_blocks():
    body = b'{"prompt": "a"}\n\n{"prompt": "bb"}\r\n{"prompt": "c"}'
    for block_size in (1, 3, 7, len(body), 1 << 20):
        assert list(stream_lines(io.BytesIO(body), block_size)) == [
            b'{"prompt": "a"}',
            b"",
            b'{"prompt": "bb"}\r',
            b'{"prompt": "c"}',
        ]
    assert list(stream_lines(io.BytesIO(b"x\n"), 4)) == [b"x"]


def test_a_line_too_long_to_be_a_record_stops_the_read():
    # A JSON array on one line (a .json file sent as JSONL) is refused as it streams in, not
    # held whole: reading it block by block is also no longer quadratic in its length.
    body = b'{"prompt": "a"}\n' + b'[{"prompt": "b"}, ' * 100
    lines = stream_lines(io.BytesIO(body), block_size=64, longest=1024)
    assert next(lines) == b'{"prompt": "a"}'
    with pytest.raises(ServiceError, match=r"line 2: longer than .*JSON array"):
        next(lines)
    assert list(stream_lines(io.BytesIO(body), block_size=64, longest=4096))[1] == body[16:]


def test_parquet_rows_stream_as_lines_within_the_memory_bounds(monkeypatch):
    buffer = io.BytesIO()
    rows = [{"prompt": f"q{n}", "metadata": {"n": n}, "raw": b"\x00\x01"} for n in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), buffer, row_group_size=2)
    buffer.seek(0)
    assert [json.loads(line) for line in import_files.parquet_lines(buffer)][:2] == [
        {"prompt": "q0", "metadata": {"n": 0}, "raw": "b'\\x00\\x01'"},  # no JSON type: text
        {"prompt": "q1", "metadata": {"n": 1}, "raw": "b'\\x00\\x01'"},
    ]
    # Not seekable (a request body): spooled to a file first.
    body = io.BufferedReader(io.BytesIO(buffer.getvalue()))
    body.seekable = lambda: False
    assert len(list(import_files.parquet_lines(body))) == 5

    # A row too long to be a record, and a row group that would unpack past the bound.
    monkeypatch.setattr(import_files, "MAX_LINE_BYTES", 40)
    with pytest.raises(ServiceError, match=r"^line 1: longer than"):
        list(import_files.parquet_lines(io.BytesIO(buffer.getvalue())))
    monkeypatch.setattr(import_files, "MAX_ROW_GROUP_BYTES", 10)
    with pytest.raises(ServiceError, match=r"^Row group 1 of the Parquet file unpacks to"):
        list(import_files.parquet_lines(io.BytesIO(buffer.getvalue())))


def test_a_parquet_file_pyarrow_cannot_read_whole_is_refused_as_such():
    def written(table) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return buffer.getvalue()

    far_future = pa.table({"prompt": ["hi"], "when": pa.array([2**62], pa.timestamp("ms"))})
    damaged = bytearray(written(pa.table({"prompt": [f"hello {n}" for n in range(1000)]})))
    for i in range(20, 200):
        damaged[i] ^= 0x5A
    for data in (written(far_future), bytes(damaged)):
        with pytest.raises(ServiceError, match=r"(?s)cannot be read past row 0 .* nothing was"):
            list(import_files.parquet_lines(io.BytesIO(data)))


def csv_body(rows: list[list], *, newline: str = "\r\n") -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator=newline).writerows(rows)
    return text.getvalue().encode()


def records(lines) -> list:
    return [line if isinstance(line, BadRow) else json.loads(line or b"null") for line in lines]


def test_kaggle_arena_csv_rows_become_lines_with_numbers_for_the_winner_flags():
    # lmsys-arena-human-preference-55k's train.csv: JSON-encoded turn lists (commas, quotes and
    # line breaks inside quoted cells), 0/1 winner flags, a byte order mark as Excel writes it.
    header = ["id", "model_a", "model_b", "prompt", "response_a", "response_b"]
    header += ["winner_model_a", "winner_model_b", "winner_tie"]
    turns = json.dumps(['Write "hello", twice.\nThanks'])
    body = b"\xef\xbb\xbf" + csv_body(
        [header, ["30192", "gpt-4", "llama", turns, '["hello hello"]', "[null]", "1", "0", "0"]]
    )
    for block_size in (1, 5, 1 << 20):  # a cell's line break may fall anywhere in a block
        stream = io.BytesIO(body)
        lines = import_files.csv_records(csv.reader(import_files.text_lines(stream, block_size)))
        assert list(lines) == [
            {
                "id": "30192",
                "model_a": "gpt-4",
                "model_b": "llama",
                "prompt": turns,
                "response_a": '["hello hello"]',
                "response_b": "[null]",
                "winner_model_a": 1,
                "winner_model_b": 0,
                "winner_tie": 0,
            }
        ]


def test_csv_cells_are_text_but_numbers_and_json_and_empty_optional_cells_are_left_out():
    body = csv_body(
        [
            ["", "prompt", "chosen", "rejected", "margin", "metadata", "model"],  # pandas' index
            ["0", "1 + 1?", "2", "11", "0.5", '{"source": "x"}', ""],
            ["1", "Why?", "", "No.", "", "", "m"],  # an empty answer stays empty text
            [],
            ["2", "Q", "a", "b", "lots", "[1", "", ""],  # trailing empty cells: fine
            ["3", "Q", "a", "b", "1", "", "", "stray"],
            ["4", "Q", "a"],  # a short row: the rest empty, as a spreadsheet drops them
        ],
        newline="\n",
    )
    assert records(csv_lines(io.BytesIO(body))) == [
        {
            "prompt": "1 + 1?",
            "chosen": "2",
            "rejected": "11",
            "margin": 0.5,
            "metadata": {"source": "x"},
        },
        {"prompt": "Why?", "chosen": "", "rejected": "No.", "model": "m"},
        None,
        {"prompt": "Q", "chosen": "a", "rejected": "b", "margin": "lots", "metadata": "[1"},
        BadRow("8 cells, but the header names 7 columns."),
        {"prompt": "Q", "chosen": "a", "rejected": ""},
    ]


def test_csv_files_that_cannot_be_read_are_refused_whole(monkeypatch):
    def read(body: bytes) -> list:
        return list(csv_lines(io.BytesIO(body)))

    for block_size in (1, 2, 1 << 20):
        with pytest.raises(ServiceError, match=r"not UTF-8 text \(line 4 of the file\).*CSV UTF-8"):
            body = 'prompt\n"Caf\u00e9\nau\n'.encode() + b'lait \xe9"\n'
            list(csv_lines(io.BytesIO(body), block_size))
    with pytest.raises(ServiceError, match="names 'prompt' more than once"):
        read(b"prompt,prompt\na,b\n")
    with pytest.raises(ServiceError, match="no header row"):
        read(b"")
    with pytest.raises(ServiceError, match=r"^line 2: not readable as CSV \(field larger"):
        limit = csv.field_size_limit(10)
        try:
            read(b"prompt\nshort\n" + b"x" * 20 + b"\n")
        finally:
            csv.field_size_limit(limit)
    # Semicolons (Excel where the comma is the decimal mark) and tabs part cells too.
    for body in (b"prompt;chosen;rejected\na, b;c;d\n", b"prompt\tchosen\trejected\na, b\tc\td\n"):
        assert records(csv_lines(io.BytesIO(body))) == [
            {"prompt": "a, b", "chosen": "c", "rejected": "d"}
        ]
    # Where semicolons part cells, numbers may have a decimal comma; elsewhere 1,5 is no number.
    semicolons = b"prompt;chosen;rejected;margin\nQ;2,5;3;1,5\nQ;a;b;2\n"
    assert [r["margin"] for r in records(csv_lines(io.BytesIO(semicolons)))] == [1.5, 2]
    commas = b'prompt,chosen,rejected,margin\nQ,a,b,"1,5"\n'
    assert records(csv_lines(io.BytesIO(commas)))[0]["margin"] == "1,5"
    monkeypatch.setattr(import_files, "MAX_LINE_BYTES", 30)
    with pytest.raises(ServiceError, match=r"^line 1: longer than"):
        read(b"prompt,chosen\n" + b"x," + b"y" * 40 + b"\n")
    # Gzipped, as uploaded by name.
    upload = io.BytesIO(gzip.compress(b"prompt\nQ\n"))
    upload.name = "Prompts.CSV.GZ"
    upload.file = upload
    assert records(import_files.uploaded_lines(upload)) == [{"prompt": "Q"}]


def test_a_gzip_file_that_cannot_be_unpacked_is_refused_as_such():
    whole = gzip.compress(b'{"prompt": "a"}\n' * 1000)
    damaged = whole[:12] + bytes(40) + whole[52:]
    for body in (b"not gzip at all", whole[:30], damaged):
        with pytest.raises(ServiceError, match=r"^Not a readable gzip file \(.+\); nothing"):
            list(import_files.file_lines(io.BytesIO(body), gzipped=True))
    assert len(list(import_files.file_lines(io.BytesIO(whole), gzipped=True))) == 1000
