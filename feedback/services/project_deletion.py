"""Deleting a project and everything in it: prompts, outputs, tasks, judgments, pairs, imports,
exports, model versions, rounds and jobs, and the files Arbiter wrote for them.

Which rows are the project's is read from the models: a row is if a cascading foreign key leads
from it to the project, through the first such path found (a task item through its task, an
output through its prompt). So a table added later goes with its project without touching this.
Rows go in set-based deletes, children first, in one transaction: Django's own deletion reads
every row into memory and fails outright past 65,535 rows (a query parameter each). PostgreSQL
still checks every deleted row's references at the commit, so a row of another project that
points into this one (none should) stops the deletion with nothing deleted.

Other apps take part through `deleting`: a receiver raises ServiceError to refuse (training
does while a round or job runs) and returns folders under ARTIFACT_ROOT to remove once the
deletion commits.
"""

import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.dispatch import Signal

from feedback.errors import ServiceError
from feedback.formats import in_artifact_root
from feedback.models import ExportSnapshot, ModelVersion, Project
from feedback.services.bulk import is_postgresql
from feedback.wording import counted

# Sent inside the deletion's transaction, with project_id, before anything is deleted.
deleting = Signal()

# What the summary names, in this order; other tables' rows go unnamed.
NAMED = (
    ("feedback.Prompt", "prompts"),
    ("feedback.Completion", "outputs"),
    ("feedback.AnnotationTask", "tasks"),
    ("feedback.Judgment", "judgments"),
    ("feedback.PreferencePair", "pairs"),
    ("feedback.ModelVersion", "model versions"),
    ("training.AlignmentRound", "rounds"),
)


@dataclass(frozen=True)
class DeletedProject:
    name: str
    rows: dict[str, int]  # by model label ("feedback.Prompt"), rows deleted

    def summary(self) -> str:
        named = [counted(self.rows[label], what) for label, what in NAMED if self.rows.get(label)]
        return f"Project {self.name!r} deleted" + (f" with {', '.join(named)}." if named else ".")


def ownership() -> list[tuple[type[models.Model], models.ForeignKey | None]]:
    """Every model whose rows belong to a project, with the cascading foreign key that leads
    from it towards the project (None for Project itself), parents before children."""
    found: dict[type[models.Model], models.ForeignKey | None] = {Project: None}
    queue = deque([Project])
    while queue:
        parent = queue.popleft()
        for relation in parent._meta.related_objects:
            child = relation.related_model
            if relation.many_to_many or child in found:
                continue
            if relation.on_delete is models.CASCADE:
                found[child] = relation.field
                queue.append(child)
        for relation in parent._meta.many_to_many:
            through = relation.remote_field.through
            if through._meta.auto_created and through not in found:
                found[through] = next(
                    f for f in through._meta.local_fields if f.related_model is parent
                )
                queue.append(through)
    return list(found.items())


def owned_ids_sql(
    model: type[models.Model], owners: dict[type[models.Model], models.ForeignKey | None]
) -> str:
    """SELECT of the ids of `model`'s rows that belong to the project (one %s parameter)."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    key = quote(model._meta.pk.column)
    field = owners[model]
    if field is None:
        return f"SELECT {key} FROM {table} WHERE {key} = %s"
    parent = owned_ids_sql(field.related_model, owners)
    return f"SELECT {key} FROM {table} WHERE {quote(field.column)} IN ({parent})"


def artifact_paths(project_id: int) -> list[Path]:
    """Files and folders Arbiter wrote for the project's exports and model versions (the
    adapters it trained are in its jobs' folders, which training hands over). A version's
    adapter path is never removed as such: typed into an import, it is someone else's folder,
    or another project's."""
    paths = [
        Path(p)
        for p in ExportSnapshot.objects.filter(project_id=project_id).values_list("path", flat=True)
        if p
    ]
    root = Path(settings.ARTIFACT_ROOT)
    versions = ModelVersion.objects.filter(project_id=project_id).values_list("pk", flat=True)
    return paths + [root / "merged" / f"version-{pk}" for pk in versions]


def inside_artifacts(path: Path) -> bool:
    """Under the artifact folder, not the folder itself."""
    return path.resolve() != Path(settings.ARTIFACT_ROOT).resolve() and in_artifact_root(path)


def remove(paths: list[Path]) -> None:
    for path in paths:
        if not inside_artifacts(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def delete_project(*, project_id: int) -> DeletedProject:
    """Delete the project and everything in it, all or nothing (see the module's docstring)."""
    try:
        with transaction.atomic():
            project = Project.objects.select_for_update().filter(pk=project_id).first()
            if project is None:
                raise ServiceError(f"No project with id {project_id}.", code="not_found")
            paths = artifact_paths(project_id)
            for _, folders in deleting.send(sender=Project, project_id=project_id):
                paths += folders or []
            owners = dict(ownership())
            rows: dict[str, int] = {}
            # Children first: each delete finds its rows through parents still in place.
            for model in reversed(list(owners)):
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)} "  # noqa: S608 - ours
                        f"WHERE {connection.ops.quote_name(model._meta.pk.column)} IN "
                        f"({owned_ids_sql(model, owners)})",
                        [project_id],
                    )
                    rows[model._meta.label] = cursor.rowcount
            if is_postgresql():
                # Checked now rather than at the commit, so a clash is caught here.
                with connection.cursor() as cursor:
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            transaction.on_commit(lambda: remove(paths))
    except IntegrityError as error:
        raise ServiceError(
            "Rows outside this project refer to it; nothing was deleted.", code="conflict"
        ) from error
    return DeletedProject(project.name, rows)
