"""Projects and who works on them."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class JudgmentMode(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise"
    RANKING = "ranking", "Ranking"
    RATING = "rating", "Rating"


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


def as_a(role: str) -> str:
    """The role in a sentence: "an annotator", "a reviewer", "an admin"."""
    return f"{'an' if role[0] in 'aeiou' else 'a'} {role}"


# Gold checks: one task in ten served by default, never most of the work.
DEFAULT_GOLD_PERCENT = 10
MAX_GOLD_PERCENT = 50


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    pairwise_enabled = models.BooleanField(default=True)
    ranking_enabled = models.BooleanField(default=False)
    rating_enabled = models.BooleanField(default=False)
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="Judgments wanted per task from different annotators."
    )
    gold_percent = models.PositiveSmallIntegerField(
        default=DEFAULT_GOLD_PERCENT,
        help_text="Of the tasks served while there is work, the share (%) that are gold checks.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )
    # The pair policies pairs were derived under, by name, with their settings (as
    # feedback.pairs.PairPolicy); imported pairs ("import") are not among them.
    pair_policies = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(pairwise_enabled=True)
                | Q(ranking_enabled=True)
                | Q(rating_enabled=True),
                name="project_has_a_judgment_mode",
            ),
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=Q(gold_percent__lte=MAX_GOLD_PERCENT), name="project_gold_percent_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def enabled_modes(self) -> list[str]:
        flags = {
            JudgmentMode.PAIRWISE: self.pairwise_enabled,
            JudgmentMode.RANKING: self.ranking_enabled,
            JudgmentMode.RATING: self.rating_enabled,
        }
        return [mode.value for mode, enabled in flags.items() if enabled]


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


class Removal(models.Model):
    """A member an admin took off the project, and when: an invitation link made before then
    does not let them back in (they may have kept it). Adding them again clears it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="removals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    removed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_removal_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} removed from {self.project}"


INVITABLE_ROLES = (Role.ANNOTATOR, Role.REVIEWER)  # admins are added by name, on purpose


class Invitation(models.Model):
    """A link that makes whoever opens it a member of the project in `role`, until it expires or
    is revoked. The link's key is shown once to the admin who made it; only its hash is kept."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=16, choices=Role.choices)
    key_hash = models.CharField(max_length=64, unique=True, help_text="sha256 hex of the key.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0, help_text="People who joined through it.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=[role.value for role in INVITABLE_ROLES]),
                name="invitation_role_invitable",
            ),
            models.CheckConstraint(
                condition=Q(key_hash__regex=r"^[0-9a-f]{64}$"), name="invitation_hash_is_sha256"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} invitation to {self.project}"
