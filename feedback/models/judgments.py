"""Judgments annotators make, reviewers' adjudications, and the preference pairs derived from them.

Judgments are stored canonically, independent of what the annotator saw on screen: a pairwise
`choice` names task positions ("a" is position 0), a `ranking` lists groups of completion ids best
first (a group is a tie), `ratings` maps completion ids to Likert scores. `shown_order` records the
on-screen order so position bias can be measured.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from .collations import BYTE_ORDER
from .projects import JudgmentMode, Project
from .prompts import Completion, Prompt, created_at_field
from .tasks import AnnotationTask


class PairwiseChoice(models.TextChoices):
    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class Strength(models.TextChoices):
    SLIGHT = "slight", "Slightly"
    MUCH = "much", "Much"


LIKERT_MIN, LIKERT_MAX = 1, 7
JUDGMENT_FLAGS = ("unsafe", "broken", "unreadable")


class Judgment(models.Model):
    # Indexed by the indexes and unique constraints below, which start with them.
    task = models.ForeignKey(
        AnnotationTask, on_delete=models.CASCADE, related_name="judgments", db_index=False
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments", db_index=False
    )
    kind = models.CharField(max_length=16, choices=JudgmentMode.choices)
    # NULL, not "", for "does not apply": the check constraints test these with IS NULL.
    choice = models.CharField(max_length=16, choices=PairwiseChoice.choices, null=True, blank=True)  # noqa: DJ001
    strength = models.CharField(max_length=16, choices=Strength.choices, null=True, blank=True)  # noqa: DJ001
    ranking = models.JSONField(null=True, blank=True)
    ratings = models.JSONField(null=True, blank=True)
    shown_order = models.JSONField(default=list)
    rationale = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    flags = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=100, db_collation=BYTE_ORDER)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [
            # "Judged today", counted on every page an annotator loads: their judgments since
            # midnight, without reading all the ones they ever made.
            models.Index(fields=["annotator", "created_at"], name="judgment_annotator_day_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "annotator"], name="one_judgment_per_annotator"
            ),
            models.UniqueConstraint(
                fields=["annotator", "idempotency_key"], name="judgment_idempotency_key_unique"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=JudgmentMode.values), name="judgment_kind_valid"
            ),
            models.CheckConstraint(
                # SQL's IN is NULL (so passes a CHECK) for a NULL choice: test for NULL too.
                condition=~Q(kind=JudgmentMode.PAIRWISE)
                | (Q(choice__isnull=False) & Q(choice__in=PairwiseChoice.values)),
                name="pairwise_judgment_has_choice",
            ),
            models.CheckConstraint(
                condition=Q(kind=JudgmentMode.PAIRWISE) | Q(choice__isnull=True),
                name="only_pairwise_has_choice",
            ),
            models.CheckConstraint(
                condition=Q(strength__isnull=True)
                | (
                    Q(strength__in=Strength.values)
                    & Q(choice__isnull=False)
                    & Q(choice__in=[PairwiseChoice.A, PairwiseChoice.B])
                ),
                name="strength_only_with_a_winner",
            ),
            models.CheckConstraint(
                condition=~Q(kind=JudgmentMode.RANKING) | Q(ranking__isnull=False),
                name="ranking_judgment_has_ranking",
            ),
            models.CheckConstraint(
                condition=~Q(kind=JudgmentMode.RATING) | Q(ratings__isnull=False),
                name="rating_judgment_has_ratings",
            ),
            models.CheckConstraint(
                condition=~Q(idempotency_key=""), name="judgment_has_idempotency_key"
            ),
        ]

    def __str__(self) -> str:
        return f"Judgment #{self.pk} on task #{self.task_id} by {self.annotator_id}"


class AdjudicationAction(models.TextChoices):
    ACCEPT = "accept", "Accept a judgment"
    OVERRIDE = "override", "Override"


class Adjudication(models.Model):
    """A reviewer's final word on a task: accept one annotator's judgment or override it."""

    task = models.OneToOneField(
        AnnotationTask, on_delete=models.CASCADE, related_name="adjudication"
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    action = models.CharField(max_length=16, choices=AdjudicationAction.choices)
    accepted_judgment = models.ForeignKey(
        Judgment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    choice = models.CharField(max_length=16, choices=PairwiseChoice.choices, null=True, blank=True)  # noqa: DJ001
    ranking = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(action=AdjudicationAction.ACCEPT) | Q(accepted_judgment__isnull=False),
                name="accept_names_a_judgment",
            ),
            models.CheckConstraint(
                condition=~Q(action=AdjudicationAction.OVERRIDE)
                | Q(choice__isnull=False)
                | Q(ranking__isnull=False),
                name="override_has_an_answer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} on task {self.task_id}"


class PreferencePair(models.Model):
    """A chosen/rejected pair derived from judgments under a named pair policy."""

    # Indexed with the id below.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="pairs", db_index=False
    )
    # Indexed although pairs are read by project (below): PostgreSQL checks each deleted prompt
    # and output for pairs that still name it, one lookup a row, and without these indexes each
    # lookup scans every pair (deleting a 100k-line import took hours where foreign-key checks
    # cannot be skipped). They cost a TRL import about 0.2 s of its database time.
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="pairs")
    # Indexed first in pair_unique_per_policy.
    chosen = models.ForeignKey(
        Completion, on_delete=models.CASCADE, related_name="chosen_in", db_index=False
    )
    rejected = models.ForeignKey(Completion, on_delete=models.CASCADE, related_name="rejected_in")
    margin = models.FloatField(default=0.0)
    is_tie = models.BooleanField(default=False)
    policy = models.CharField(max_length=64, default="default")
    judgments = models.ManyToManyField(
        Judgment, through="PairJudgment", related_name="pairs", blank=True
    )
    created_at = created_at_field()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(chosen=F("rejected")), name="pair_of_two_completions"
            ),
            models.CheckConstraint(condition=Q(margin__gte=0), name="pair_margin_non_negative"),
            # Chosen first, so this index also serves the foreign key.
            models.UniqueConstraint(
                fields=["chosen", "rejected", "policy"], name="pair_unique_per_policy"
            ),
        ]
        indexes = [
            # Exports read a project's pairs in id order and pin its newest id: with the project
            # alone indexed, both walked the id index through every other project's pairs.
            models.Index(fields=["project", "id"], name="pair_project_in_id_order"),
        ]

    def __str__(self) -> str:
        return f"{self.chosen_id} over {self.rejected_id} ({self.policy})"


class PairJudgment(models.Model):
    """A judgment that a pair was derived from (the table Django would make for the link, and
    whether the judgment backs the pair)."""

    # Indexed first in the unique pair below; an index of its own was one more entry to write
    # for every link.
    preferencepair = models.ForeignKey(PreferencePair, on_delete=models.CASCADE, db_index=False)
    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE)
    # False for a judgment that voted otherwise (a dissent the majority outvoted): it stays
    # linked, as the pair's provenance, but filters by annotator or agreement do not count it.
    backs = models.BooleanField(db_default=True)

    class Meta:
        db_table = "feedback_preferencepair_judgments"
        unique_together = [("preferencepair", "judgment")]

    def __str__(self) -> str:
        return f"pair {self.preferencepair_id} from judgment {self.judgment_id}"
