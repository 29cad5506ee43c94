"""The fast path of pair exports on PostgreSQL: one streamed query, in pair id order, that sends a
prompt and its completions' texts once per run of pairs on that prompt; Python escapes each text
once per run and assembles lines from bytes (feedback.services.exports.pair_jsonl_chunks).

Why this shape (benchmarks/api_export.py, 1M pairs; CPU seconds per million rows, 2 shared cores):
- Looking up two completions per pair by primary key cost PostgreSQL ~5.5-7 s per million rows
  (with the rest of the query). The pairs of one prompt come together (import and derivation
  order), so the first pair of a run fetches all the prompt's completions in one index scan on
  completion.prompt_id (a window `lag` spots the run's start) and the others fetch nothing.
- A pair's completions normally belong to its prompt, but nothing in the schema says so. Checking
  every pair in SQL (each row carries forward the ids sent at its run's start, a running `min`
  over arrays, and fetches its own text when a completion is not among them) costs PostgreSQL a
  third more. So the unchecked query runs first and Python checks each pair against its run's
  texts; at the first miss (a completion of another prompt, or a prompt with more than
  RUN_COMPLETIONS completions, which sends none up front) the checked query takes over from
  that pair. Ending the first query early cancels it, so it runs inside a savepoint.
- Rows leave in the pairs' id order with no sort of a million lines: the first byte at once,
  memory flat on both sides. Chunked rows mode (libpq 17+) hands them to Python in batches that
  psycopg decodes in C: a third of the CPU of a binary COPY read row by row.
- JSON escaping and string concatenation in SQL (to_json, ||) cost PostgreSQL more than Python's
  C escaper, and the two processes work side by side, so Python does it.
- JIT is off: compiling the expressions took seconds and saved nothing on lookups. Parallel
  query is off: for a whole project the planner otherwise picks a parallel scan and sort of the
  pairs, which holds the first byte back and takes cores from the two processes doing the work.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from django.db import connection

from feedback.models import Completion, Prompt

RUN_COMPLETIONS = 16  # the most completion texts a run's first pair fetches for its prompt
STREAM_ROWS = 2000  # rows per chunk of the streamed result

# One column for the prompt at a run's start: "t" + its text, or "m" + its messages as JSON.
PROMPT_SQL = (
    "(SELECT CASE WHEN p.messages IS NULL THEN 't' || p.text ELSE 'm' || p.messages::text END "
    "FROM {prompts} p WHERE p.id = pp.prompt_id)"
)
# The completion ids that the current run's first pair sent, after minus that pair's id: the
# running minimum of these arrays is the latest run's (pair ids grow; completion ids are > 0).
RUN_IDS_SQL = (
    "min(CASE WHEN pp.is_new_prompt THEN (-pp.id) || coalesce(cs.ids, '{}') END) "
    "OVER (ORDER BY pp.id)"
)


def own_text_sql(column: str) -> str:
    """A pair's own completion text, unless its run's first pair sent it."""
    return (
        f"CASE WHEN pp.{column} = ANY({RUN_IDS_SQL}) THEN NULL ELSE "
        f"(SELECT c.text FROM {Completion._meta.db_table} c WHERE c.id = pp.{column}) END"
    )


def pair_rows_sql(pairs_sql: str, *, checked: bool) -> str:
    """Rows (pair id, prompt_id, prompt or NULL, completion ids or NULL, their texts or NULL,
    chosen_id, rejected_id, margin[, chosen text or NULL, rejected text or NULL]) in pair id
    order, for the pairs `pairs_sql` selects (columns id, prompt_id, chosen_id, rejected_id,
    margin). Only a `checked` query has the last two columns: it carries each run's ids forward
    to find the pairs whose texts the run did not send."""
    completions = Completion._meta.db_table
    own_texts = ""
    if checked:
        own_texts = ", " + ", ".join(own_text_sql(c) for c in ("chosen_id", "rejected_id"))
    return (
        "SELECT pp.id, pp.prompt_id, "
        f"CASE WHEN pp.is_new_prompt THEN {PROMPT_SQL.format(prompts=Prompt._meta.db_table)} END, "
        f"cs.ids, cs.texts, pp.chosen_id, pp.rejected_id, pp.margin{own_texts} "
        "FROM (SELECT s.*, s.prompt_id IS DISTINCT FROM lag(s.prompt_id) OVER (ORDER BY s.id) "
        f"AS is_new_prompt FROM ({pairs_sql}) s) pp "
        "LEFT JOIN LATERAL (SELECT array_agg(c.id) AS ids, array_agg(c.text) AS texts "
        f"FROM (SELECT c.id, c.text FROM {completions} c "
        "WHERE pp.is_new_prompt AND c.prompt_id = pp.prompt_id "
        f"LIMIT {RUN_COMPLETIONS + 1}) c HAVING count(*) <= {RUN_COMPLETIONS}) cs ON true "
        "ORDER BY pp.id"
    )


def run_start(prompt: str, ids: list | None, texts: list | None) -> tuple[tuple, dict]:
    """The prompt as (text, messages JSON or None) and the run's texts by completion id."""
    prompt = ("", prompt[1:]) if prompt[0] == "m" else (prompt[1:], None)
    return prompt, (dict(zip(ids, texts, strict=True)) if ids is not None else {})


def stream_pair_rows(pairs_sql: str, params: list) -> Iterator[tuple]:
    """(prompt_id, prompt, texts, chosen_id, rejected_id, margin, chosen, rejected) per pair, in
    id order, as feedback.services.exports.pair_rows describes them. Call inside a transaction;
    close the iterator to end the query early.

    Pairs almost always use their own prompt's completions, so the unchecked query comes first;
    at the first pair whose texts its run did not send, it stops and the checked query takes
    over from that pair on."""
    connection.ensure_connection()
    raw = connection.connection
    # Parameters go in as literals, as Django's client-side binding sends them (a judgment filter
    # can list more pair ids than the 65,535 parameters a bound statement takes); the rows come
    # back binary, which only a server-side binding cursor reads.
    mogrify = psycopg.ClientCursor(raw).mogrify
    resume_at, run_texts = None, {}
    with psycopg.Cursor(raw) as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        # A stream ended early cancels its query, which fails the transaction: a savepoint
        # lets the checked query run after it.
        cursor.execute("SAVEPOINT arbiter_pair_rows")
        rows = cursor.stream(
            mogrify(pair_rows_sql(pairs_sql, checked=False), params), binary=True, size=STREAM_ROWS
        )
        try:
            for pair_id, prompt_id, prompt, ids, texts, chosen_id, rejected_id, margin in rows:
                if prompt is not None:
                    prompt, run_texts = run_start(prompt, ids, texts)
                if chosen_id not in run_texts or rejected_id not in run_texts:
                    resume_at = pair_id
                    break
                yield prompt_id, prompt, run_texts, chosen_id, rejected_id, margin, None, None
        finally:
            rows.close()
        if resume_at is None:
            cursor.execute("RELEASE SAVEPOINT arbiter_pair_rows")
            return
        cursor.execute("ROLLBACK TO SAVEPOINT arbiter_pair_rows")
        cursor.execute("RELEASE SAVEPOINT arbiter_pair_rows")
        rest = mogrify(
            pair_rows_sql(f"SELECT * FROM ({pairs_sql}) r WHERE r.id >= %s", checked=True),
            [*params, resume_at],
        )
        for row in cursor.stream(rest, binary=True, size=STREAM_ROWS):
            _, prompt_id, prompt, ids, texts, chosen_id, rejected_id, margin, chosen, rejected = row
            if prompt is not None:
                prompt, run_texts = run_start(prompt, ids, texts)
            yield prompt_id, prompt, run_texts, chosen_id, rejected_id, margin, chosen, rejected
