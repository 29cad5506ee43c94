"""Rows without the ORM's per-row work, for the queries where it costs more than the query:

- `first_instance`: model instances from hand-written SQL, for the queries that run on every
  annotation request. `Model.objects.raw` works out, on every query, which column feeds which
  field and how to convert it; at hundreds of requests a second that costs more than the query
  (about 0.1 ms of CPU of the ~4 ms a judgment takes, benchmarks/queue_throughput.py). Here that
  is worked out once per model, statement and connection, and rows go through the same
  converters the ORM uses.
- `fetched_rows` and `streamed_rows`: a values_list query's rows as the driver hands them over,
  for reads of a million rows (the leaderboard, exports), where Django's converters took more
  than the query. JSON comes as text (`json_column` reads it), times as each backend gives them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import orjson
from django.db import connections, models
from django.db.models import QuerySet
from django.db.models.sql.constants import MULTI

M = TypeVar("M", bound=models.Model)


# Row plans by model, statement and connection (one per thread; backend converters are its bound
# methods). The statement's text fixes its columns: reading them from the cursor's description
# builds a Column object per column, each time.
plans: dict[tuple, tuple[list[int], list, list, list]] = {}


def row_plan(
    model: type[M], columns: tuple[str, ...], connection
) -> tuple[list[int], list, list, list]:
    """For each of the model's fields in order, the index of its column and its attname;
    (index in that order, column, converters) for the fields whose values need converting; and
    (index, name) of the columns that are not the model's, which become attributes, as the
    ORM's annotations do."""
    index_of = {column: index for index, column in enumerate(columns)}
    fields = model._meta.concrete_fields
    missing = [field.column for field in fields if field.column not in index_of]
    if missing:
        raise ValueError(f"The query must select every column of {model.__name__}: {missing}.")
    converting = []
    for position, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if converters:
            converting.append((position, col, converters))
    names = [field.attname for field in fields]
    own = {field.column for field in fields}
    extra = [(index, column) for index, column in enumerate(columns) if column not in own]
    return [index_of[field.column] for field in fields], names, converting, extra


def first_instance(model: type[M], sql: str, params, using: str = "default") -> M | None:
    """The first row of `sql`, which selects all of `model`'s columns by name, as an instance;
    any other column it selects is set on the instance as an attribute of the same name."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        plan = plans.get((model, sql, connection))
        if plan is None:
            columns = tuple(column[0] for column in cursor.description)
            plan = plans[model, sql, connection] = row_plan(model, columns, connection)
    order, names, converting, extra = plan
    values = [row[index] for index in order]
    for position, col, converters in converting:
        for converter in converters:
            values[position] = converter(values[position], col, connection)
    instance = model.from_db(using, names, values)
    for index, name in extra:
        setattr(instance, name, row[index])
    return instance


def json_column(value: object) -> object:
    """A JSON column's value from a raw cursor: Django's backends hand jsonb over as text."""
    return orjson.loads(value) if isinstance(value, str) else value


def fetched_rows(values: QuerySet) -> list[tuple]:
    """All rows of a values_list query, on an ordinary cursor: PostgreSQL plans for the whole
    result (a server-side cursor's plan, made for the first rows, took four times longer for a
    million)."""
    sql, params = values.query.sql_with_params()
    with connections[values.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def streamed_rows(values: QuerySet, chunk_size: int = 2000) -> Iterator[tuple]:
    """The rows of a values_list query, streamed as `iterator()` streams them (constant memory).
    Columns come in the database's order: the fields named, then the annotations named."""
    compiler = values.query.get_compiler(using=values.db)
    width = len(values.query.values_select) + len(values.query.annotation_select)
    for chunk in compiler.execute_sql(MULTI, chunked_fetch=True, chunk_size=chunk_size):
        for row in chunk:
            yield row[:width]
