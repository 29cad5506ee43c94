"""Deriving a project's PreferencePair rows from its judgments under a named pair policy
(feedback.pairs holds the rules), as reviewers decided their tasks (an accepted judgment alone,
or a reviewer's answer instead of the annotators'), gold checks left out. Re-deriving a policy
replaces the pairs it made before, in one transaction; imported pairs (policy "import") are
never touched."""

from dataclasses import asdict, dataclass

from django.db import transaction

from feedback.errors import ServiceError
from feedback.insights import judgment_views
from feedback.models import Adjudication, PreferencePair, Project
from feedback.models.judgments import AdjudicationAction
from feedback.pairs import Decision, PairPolicy, as_decided, preference_pairs
from feedback.selectors import gold_checks
from feedback.services.imports import IMPORT_POLICY


@dataclass(frozen=True)
class DeriveResult:
    policy: str
    judgments: int
    pairs: int
    ties: int
    replaced: int

    def as_json(self) -> dict:
        return self.__dict__.copy()


def decisions(project_id: int) -> list[Decision]:
    """Reviewers' decisions on the project's tasks, as feedback.pairs.as_decided reads them."""
    return [
        Decision(
            task_id=task_id,
            accepted_judgment_id=accepted if action == AdjudicationAction.ACCEPT else None,
            choice=choice if action == AdjudicationAction.OVERRIDE else None,
            ranking=tuple(tuple(group) for group in ranking)
            if action == AdjudicationAction.OVERRIDE and ranking
            else None,
        )
        for task_id, action, accepted, choice, ranking in Adjudication.objects.filter(
            task__project_id=project_id
        ).values_list("task_id", "action", "accepted_judgment_id", "choice", "ranking")
        if action == AdjudicationAction.OVERRIDE or accepted is not None  # (one deleted since)
    ]


def derive_pairs(*, project_id: int, policy: PairPolicy) -> DeriveResult:
    """Replace the project's pairs under `policy.name` with those its judgments give now."""
    if policy.name == IMPORT_POLICY:
        raise ServiceError(
            f"The policy name {IMPORT_POLICY!r} is kept for imported pairs; pick another."
        )
    if not policy.name or len(policy.name) > 64:
        raise ServiceError("Name the policy (1 to 64 characters).")
    if policy.aggregate == "none":
        raise ServiceError(
            "Pairs are stored once per (policy, chosen, rejected); aggregate votes with 'majority' "
            "or 'bradley_terry'."
        )
    if not Project.objects.filter(pk=project_id).exists():
        raise ServiceError(f"No project with id {project_id}.", code="not_found")
    # A gold check measures its annotator; the task's pairs are what its answer was decided from.
    checks = set().union(*gold_checks(project_id).values())
    views = as_decided(
        [view for view in judgment_views(project_id) if view.judgment_id not in checks],
        decisions(project_id),
    )
    try:
        pairs = preference_pairs(views, policy)
    except ValueError as error:
        raise ServiceError(f"The judgments do not fit the policy: {error}") from error
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project_id)
        derived = {**project.pair_policies, policy.name: asdict(policy)}
        if not pairs:  # a policy that made no pairs has none to mix with another's
            del derived[policy.name]
        project.pair_policies = derived
        project.save(update_fields=["pair_policies"])
        _, deleted = PreferencePair.objects.filter(
            project_id=project_id, policy=policy.name
        ).delete()
        rows = PreferencePair.objects.bulk_create(
            PreferencePair(
                project_id=project_id,
                prompt_id=pair.prompt_id,
                chosen_id=pair.chosen_id,
                rejected_id=pair.rejected_id,
                margin=pair.margin,
                is_tie=pair.is_tie,
                policy=policy.name,
            )
            for pair in pairs
        )
        if not all(row.pk for row in rows):  # backends that cannot return ids from bulk inserts
            ids = dict(
                ((chosen, rejected), pk)
                for pk, chosen, rejected in PreferencePair.objects.filter(
                    project_id=project_id, policy=policy.name
                ).values_list("pk", "chosen_id", "rejected_id")
            )
            for row in rows:
                row.pk = ids[(row.chosen_id, row.rejected_id)]
        link = PreferencePair.judgments.through
        link.objects.bulk_create(
            link(
                preferencepair_id=row.pk,
                judgment_id=judgment_id,
                backs=judgment_id in pair.backing_ids,
            )
            for row, pair in zip(rows, pairs, strict=True)
            for judgment_id in pair.judgment_ids
        )
    return DeriveResult(
        policy=policy.name,
        judgments=len(views),
        pairs=len(pairs),
        ties=sum(pair.is_tie for pair in pairs),
        replaced=deleted.get(PreferencePair._meta.label, 0),
    )
