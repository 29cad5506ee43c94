"""Bulk inserts for imports: PostgreSQL COPY with ids reserved from the table's sequence up front,
so rows can point at each other before any is written; plain `bulk_create` on other databases.

Callers run inside a transaction and pass rows as tuples in the order of `fields` (attnames).
JSON fields take `json_value(...)`. Columns left out get their database default.

The COPY is binary: numbers and timestamps go as their bytes, and neither side prints, escapes or
parses text. 200,000 completion rows took the server 0.24 s instead of 0.40-0.48 s (psycopg
formats binary rows in C) and PostgreSQL 0.66 s instead of 0.90 s, at best of six runs each.

Foreign keys: PostgreSQL checks each row's references with a trigger per row and key (a query
and a row lock each), which cost two thirds of a large import's database time. Inside
`references_vouched_for()` those triggers are off, so the writer must vouch for every reference
itself, as the triggers would have: each referenced row is either written by this transaction
(nobody else can see it, let alone delete it) or found and locked FOR KEY SHARE by it
(`lock_referenced`, or a lookup with that clause), which keeps it until the commit.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress

import orjson
import psycopg
from django.db import DatabaseError, connection, models
from psycopg.adapt import PyFormat
from psycopg.postgres import types as pg_types

from feedback.errors import ServiceError

SQLITE_BATCH = 500
# PostgreSQL's binary jsonb: a version byte, then the JSON text.
JSONB_VERSION = b"\x01"
EMPTY_OBJECT = JSONB_VERSION + b"{}"
JSONB_OID = pg_types["jsonb"].oid
BYTEA_OID = pg_types["bytea"].oid
# psycopg's jsonb dumper encodes an object per row, in Python. A json_value() is ready to send,
# so jsonb columns get the bytes dumper (C; psycopg's default for the bytea oid is Python).
# COPY reads each field as its column's type, whatever the client took it for.
BYTES_DUMPER = psycopg.adapters.get_dumper(bytes, PyFormat.BINARY)
# Column type oids by table: a binary row must match its columns' types exactly. Arbiter's
# columns are of built-in types, whose oids are the same in every database.
_column_types: dict[str, dict[str, int]] = {}
_sequences: dict[str, str] = {}


def json_value(value: object) -> bytes:
    """A JSON column's value for insert_rows (binary jsonb; SQLite takes what follows the version
    byte)."""
    return EMPTY_OBJECT if value == {} else JSONB_VERSION + orjson.dumps(value)


def column_types(table: str) -> dict[str, int]:
    if table not in _column_types:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attname, atttypid FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                [f'"{table}"'],
            )
            _column_types[table] = dict(cursor.fetchall())
    return _column_types[table]


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def may_skip_triggers() -> bool:
    """Whether this database role may turn off foreign-key triggers: a superuser can, and from
    PostgreSQL 15 a role granted SET on session_replication_role. Only PostgreSQL has them."""
    if not is_postgresql():
        return False
    with connection.cursor() as cursor:
        if connection.pg_version >= 150000:
            cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
        else:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        return bool(cursor.fetchone()[0])


@contextmanager
def references_vouched_for(allowed: bool) -> Iterator[None]:
    """Write without per-row foreign-key checks (see the module's docstring for the contract)
    where `allowed` (may_skip_triggers(), asked once per import); otherwise the checks run as
    usual. Deleting an import uses it too, under the converse contract: nothing references a
    row it deletes (feedback/services/import_deletion.py)."""
    if not allowed:
        yield
        return
    with connection.cursor() as cursor:
        # Replica mode fires no ordinary triggers; Arbiter's tables have none but the checks.
        cursor.execute("SET LOCAL session_replication_role = replica")
    try:
        yield
    finally:
        # After a failed statement the transaction is aborted and the rollback resets it.
        with suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")


def lock_referenced(model: type[models.Model], ids: Iterable[int]) -> None:
    """Lock existing rows that the writes will reference, as a foreign-key check does; refuse if
    one is gone (deleted since it was read)."""
    wanted = set(ids)
    if not wanted or not is_postgresql():
        return
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT id FROM "{table}" WHERE id = ANY(%s) FOR KEY SHARE',  # noqa: S608 - ours
            [sorted(wanted)],
        )
        missing = wanted - {row[0] for row in cursor.fetchall()}
    if missing:
        raise ServiceError(
            f"{model._meta.verbose_name} {sorted(missing)[:10]} no longer exists; nothing was "
            "written.",
            code="conflict",
        )


def sequence_of(table: str) -> str:
    """The sequence that numbers `table`'s ids (PostgreSQL), asked once per process."""
    if table not in _sequences:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [f'"{table}"'])
            _sequences[table] = cursor.fetchone()[0]
    return _sequences[table]


def reserve_ids(counts: dict[type[models.Model], int]) -> dict[type[models.Model], list[int]]:
    """Fresh primary keys, `counts[model]` of them for each model, in one round trip on
    PostgreSQL: an import reserves a chunk's ids for all its tables at once. Call inside the
    writing transaction."""
    wanted = {model: count for model, count in counts.items() if count > 0}
    ids: dict[type[models.Model], list[int]] = {model: [] for model in counts}
    if not wanted:
        return ids
    if not is_postgresql():
        ids.update((model, sqlite_ids(model, count)) for model, count in wanted.items())
        return ids
    models_in_order = list(wanted)
    # Without concurrent inserts each table's ids form one run: fetch its ends, not every id.
    # If someone else took ids meanwhile, the run has holes: take fresh ids one by one (the
    # skipped ones are merely unused).
    query = " UNION ALL ".join(
        f"SELECT {index}, min(v), max(v) FROM "
        "(SELECT nextval(%s::regclass) AS v FROM generate_series(1, %s)) s"
        for index in range(len(models_in_order))
    )
    params = [
        value
        for model in models_in_order
        for value in (sequence_of(model._meta.db_table), wanted[model])
    ]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for index, low, high in cursor.fetchall():
            model = models_in_order[index]
            count = wanted[model]
            if high - low + 1 == count:
                ids[model] = list(range(low, high + 1))
                continue
            cursor.execute(
                "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                [sequence_of(model._meta.db_table), count],
            )
            ids[model] = [row[0] for row in cursor.fetchall()]
    return ids


def sqlite_ids(model: type[models.Model], count: int) -> list[int]:
    # The transaction holds SQLite's write lock (IMMEDIATE), so nobody else takes ids until we
    # commit; AUTOINCREMENT never reuses ids, so start past sqlite_sequence too.
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')  # noqa: S608 - table name is ours
        highest = cursor.fetchone()[0]
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = %s", [table])
        highest = max(highest, cursor.fetchone()[0])
    return list(range(highest + 1, highest + 1 + count))


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert `rows` (tuples in `fields` order, including "id") into `model`'s table."""
    opts = model._meta
    columns = [opts.get_field(name).column for name in fields]
    if is_postgresql():
        quoted = ", ".join(f'"{column}"' for column in columns)
        types = column_types(opts.db_table)
        # The raw cursor's errors come out as Django's (IntegrityError...), as a query's would.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper
            raw.adapters.register_dumper(None, BYTES_DUMPER)  # by oid, for this cursor only
            with raw.copy(f'COPY "{opts.db_table}" ({quoted}) FROM STDIN (FORMAT BINARY)') as copy:
                copy.set_types([BYTEA_OID if types[c] == JSONB_OID else types[c] for c in columns])
                for row in rows:
                    copy.write_row(row)
        return
    json_fields = {
        index
        for index, name in enumerate(fields)
        if isinstance(opts.get_field(name), models.JSONField)
    }
    batch: list[models.Model] = []
    for row in rows:
        values = {
            name: (json.loads(value[1:]) if index in json_fields and value is not None else value)
            for index, (name, value) in enumerate(zip(fields, row, strict=True))
        }
        batch.append(model(**values))
        if len(batch) >= SQLITE_BATCH:
            model.objects.bulk_create(batch)
            batch.clear()
    if batch:
        model.objects.bulk_create(batch)
