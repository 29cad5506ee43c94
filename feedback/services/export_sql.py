"""The fast path of pair exports on PostgreSQL: the database writes each JSONL line and streams
them with COPY, so Python only hashes and forwards bytes (no per-row objects at all).

Every expression here must give byte for byte what feedback.services.exports writes in Python
(tests/feedback/test_exports.py compares the two):
- to_json(text) escapes like json.encoder.encode_basestring: ", \\, \\b \\f \\n \\r \\t and other
  control characters as lowercase \\u00xx; everything else raw (ensure_ascii=False);
- a chat prompt renders as Python's render_hh_prompt / compact JSON of its messages;
- a margin prints like Python's repr(float): PostgreSQL drops ".0" from whole numbers, so add it.

COPY's CSV format with a delimiter and quote character that never occur unescaped in JSON (they
are control characters, which to_json escapes) passes each line through verbatim.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection

from feedback.models import Completion, Prompt

STREAM_BYTES = 1 << 18  # forward about 256 KiB at a time

HH_SPEAKER_SQL = (
    "CASE e.m->>'role' WHEN 'user' THEN 'Human' WHEN 'assistant' THEN 'Assistant' "
    "WHEN 'system' THEN 'System' ELSE 'Tool' END"
)
MESSAGES = "jsonb_array_elements(p.messages) WITH ORDINALITY AS e(m, ord)"
STANDARD_PROMPT = (
    "CASE WHEN p.messages IS NULL THEN to_json(p.text)::text ELSE to_json("
    f"(SELECT string_agg(E'\\n\\n' || {HH_SPEAKER_SQL} || ': ' || (e.m->>'content'), '' ORDER BY e.ord) "
    f"FROM {MESSAGES}) || E'\\n\\nAssistant:')::text END"
)
CONVERSATIONAL_PROMPT = (
    """CASE WHEN p.messages IS NULL THEN '[{"role":"user","content":' || to_json(p.text)::text || '}]' """
    """ELSE (SELECT '[' || string_agg('{"role":' || to_json(e.m->>'role')::text || ',"content":' || """
    f"""to_json(e.m->>'content')::text || '}}', ',' ORDER BY e.ord) || ']' FROM {MESSAGES}) END"""
)
MARGIN = (
    """',"margin":' || CASE WHEN pp.margin = trunc(pp.margin) AND abs(pp.margin) < 1e16 """
    "THEN trunc(pp.margin)::bigint::text || '.0' ELSE pp.margin::text END"
)


def answer(column: str, style: str) -> str:
    if style == "standard":
        return f"to_json(CASE WHEN p.messages IS NULL THEN {column} ELSE ' ' || {column} END)::text"
    return f"""'[{{"role":"assistant","content":' || to_json({column})::text || '}}]'"""


def line_sql(style: str, margin: bool) -> str:
    prompt = STANDARD_PROMPT if style == "standard" else CONVERSATIONAL_PROMPT
    parts = [
        """'{"prompt":'""",
        prompt,
        """',"chosen":'""",
        answer("c.text", style),
        """',"rejected":'""",
        answer("r.text", style),
    ]
    if margin:
        parts.append(MARGIN)
    parts.append("'}'")
    return " || ".join(parts)


def copy_pair_lines(
    pairs_sql: str, params: list, style: str, margin: bool
) -> Iterator[tuple[bytes, int]]:
    """(bytes, rows) chunks of JSONL, in id order, for the pairs `pairs_sql` selects (columns id,
    prompt_id, chosen_id, rejected_id, margin). Call inside a transaction."""
    query = (
        f"SELECT {line_sql(style, margin)} FROM ({pairs_sql}) pp "
        f"JOIN {Prompt._meta.db_table} p ON p.id = pp.prompt_id "
        f"JOIN {Completion._meta.db_table} c ON c.id = pp.chosen_id "
        f"JOIN {Completion._meta.db_table} r ON r.id = pp.rejected_id "
        "ORDER BY pp.id"
    )
    with connection.cursor() as cursor:
        raw = cursor.cursor
        # Hash joins over a whole project beat an index lookup per pair, if they fit in memory.
        raw.execute("SET LOCAL work_mem = '64MB'")
        statement = (
            f"COPY ({query}) TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"
        )
        with raw.copy(statement, params) as copy:
            buffer: list[bytes] = []
            size = 0
            for block in copy:
                buffer.append(bytes(block))
                size += len(block)
                if size >= STREAM_BYTES:
                    data = b"".join(buffer)
                    yield data, data.count(b"\n")
                    buffer.clear()
                    size = 0
            if buffer:
                data = b"".join(buffer)
                yield data, data.count(b"\n")
