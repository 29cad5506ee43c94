"""The fast path of pair exports on PostgreSQL: stream each pair's raw texts with one binary COPY,
in pair id order, and leave the JSON to Python (feedback.services.exports.pair_lines).

Why this shape (benchmarks/api_export.py, 1M pairs):
- Texts are looked up per pair through the primary keys (scalar subqueries), so rows leave in id
  order as the pairs' index scan yields them: no hash of the whole completion table, no sort of
  a million lines spilling to disk, the first byte at once, memory flat on both sides.
- A prompt is looked up only when it differs from the previous pair's (window `lag`); pairs of one
  prompt come together in import and derivation order, so most pairs skip that lookup.
- PostgreSQL sends raw texts and Python escapes them: to_json and string concatenation in SQL cost
  the database more than the lookups, and the two processes then work side by side.
- JIT is off: compiling the expressions took seconds and saved nothing on lookups.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection

from feedback.models import Completion, Prompt

# One column for the prompt: "t" + its text, or "m" + its messages as JSON; NULL when it is the
# previous pair's prompt again.
PROMPT_SQL = (
    "CASE WHEN pp.is_new_prompt THEN (SELECT CASE WHEN p.messages IS NULL THEN 't' || p.text "
    "ELSE 'm' || p.messages::text END FROM {prompts} p WHERE p.id = pp.prompt_id) END"
)
TEXT_SQL = "(SELECT c.text FROM {completions} c WHERE c.id = pp.{column})"


def pair_rows_sql(pairs_sql: str) -> str:
    """Rows (prompt_id, prompt or NULL, chosen text, rejected text, margin) in pair id order, for
    the pairs `pairs_sql` selects (columns id, prompt_id, chosen_id, rejected_id, margin)."""
    completions = Completion._meta.db_table
    return (
        f"SELECT pp.prompt_id, {PROMPT_SQL.format(prompts=Prompt._meta.db_table)}, "
        f"{TEXT_SQL.format(completions=completions, column='chosen_id')}, "
        f"{TEXT_SQL.format(completions=completions, column='rejected_id')}, pp.margin "
        "FROM (SELECT s.*, s.prompt_id IS DISTINCT FROM lag(s.prompt_id) OVER (ORDER BY s.id) "
        f"AS is_new_prompt FROM ({pairs_sql}) s) pp ORDER BY pp.id"
    )


def copy_pair_rows(pairs_sql: str, params: list) -> Iterator[tuple]:
    """(prompt_id, prompt text, prompt messages as JSON text or None, chosen, rejected, margin)
    per pair, in id order, as feedback.services.exports.pair_rows gives them. Call inside a
    transaction; close the iterator to end the COPY early."""
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper
        raw.execute("SET LOCAL jit = off")
        statement = f"COPY ({pair_rows_sql(pairs_sql)}) TO STDOUT (FORMAT binary)"
        with raw.copy(statement, params) as copy:
            copy.set_types(["int8", "text", "text", "text", "float8"])
            text, messages = "", None
            for prompt_id, prompt, chosen, rejected, margin in copy.rows():
                if prompt is not None:
                    if prompt[0] == "m":
                        text, messages = "", prompt[1:]
                    else:
                        text, messages = prompt[1:], None
                yield prompt_id, text, messages, chosen, rejected, margin
