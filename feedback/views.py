"""Insight pages for a project's reviewers and admins: leaderboard and annotator agreement."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from feedback import charts, insights, selectors
from feedback.api.permissions import REVIEWERS
from feedback.models import Project


def reviewable_project(request, project_id: int) -> Project:
    role = selectors.role_in(request.user, project_id)
    if role is None:
        raise Http404("No such project.")
    if role not in REVIEWERS:
        raise PermissionDenied("Only the project's reviewers and admins see its insights.")
    return get_object_or_404(Project, pk=project_id)


@login_required
def leaderboard(request, project_id: int):
    project = reviewable_project(request, project_id)
    style_control = request.GET.get("style_control") == "1"
    board = insights.leaderboard(project.pk, style_control=style_control)
    labels = [row.model for row in board.rows]
    context = {
        "project": project,
        "board": board,
        "style_control": style_control,
        "style_effects": [
            (name, "–" if effect is None else f"{effect:+.2f}")
            for name, effect in (board.style_effects or {}).items()
        ],
        "interval_svg": charts.interval_plot(
            labels,
            [row.bt_score for row in board.rows],
            [row.bt_low for row in board.rows],
            [row.bt_high for row in board.rows],
            title=f"Bradley-Terry ratings with {int(board.confidence * 100)}% bootstrap intervals",
            unit="Elo",
        ),
        "heatmap_svg": charts.heatmap(
            labels, board.win_rates, title="Observed win rate, row over column"
        ),
    }
    return render(request, "feedback/leaderboard.html", context)


@login_required
def agreement(request, project_id: int):
    project = reviewable_project(request, project_id)
    report = insights.agreement_report(project.pk)
    context = {
        "project": project,
        "report": report,
        "over_time_svg": charts.line_chart(
            [period["period"] for period in report.over_time],
            [period["agreement"] for period in report.over_time],
            title="Pairwise agreement per week",
        ),
    }
    return render(request, "feedback/agreement.html", context)
