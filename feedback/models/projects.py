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


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    pairwise_enabled = models.BooleanField(default=True)
    ranking_enabled = models.BooleanField(default=False)
    rating_enabled = models.BooleanField(default=False)
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="Judgments wanted per task from different annotators."
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )
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
