"""Insight pages for a project's reviewers and admins: leaderboard, annotator agreement, and the
preference data the judgments make."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from feedback import charts, insights, selectors
from feedback.api.permissions import REVIEWERS
from feedback.errors import ServiceError
from feedback.forms import PairPolicyForm
from feedback.models import Project, Role
from feedback.services.imports import IMPORT_POLICY
from feedback.services.pairs import derive_pairs


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


# Snapshot filters that say nothing about what was exported, as values that leave them out.
UNSAID = {"style": "standard", "margin": False, "include_ties": False}


def snapshot_summary(snapshot) -> str:
    """The filters a snapshot was made with, those that narrowed it or shaped its rows."""
    said = [
        f"{key.replace('_', ' ')}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in snapshot.filters.items()
        if key != "up_to_id" and value not in (None, [], "") and UNSAID.get(key) != value
    ]
    return "; ".join([snapshot.format, *said])


@login_required
@require_http_methods(["GET", "POST"])
def data(request, project_id: int):
    """Pairs per policy with their downloads, other exports, recent snapshots; admins derive."""
    project = reviewable_project(request, project_id)
    can_derive = selectors.has_role(request.user, project.pk, Role.ADMIN)
    form = PairPolicyForm(request.POST if request.method == "POST" else None)
    errors: list[str] = []
    if form.is_bound:
        if not can_derive:
            raise PermissionDenied("Only the project's admins derive preference pairs.")
        if form.is_valid():
            try:
                result = derive_pairs(project_id=project.pk, policy=form.policy())
            except ServiceError as error:
                errors.append(error.message)
            else:
                messages.success(
                    request,
                    f"Policy \u201c{result.policy}\u201d: {result.pairs} pairs ({result.ties} ties) "
                    f"from {result.judgments} judgments; {result.replaced} earlier pairs replaced.",
                )
                return redirect("insights:data", project.pk)
        else:
            errors += [
                f"{form.fields[name].label or name}: {' '.join(e)}"
                for name, e in form.errors.items()
            ]
    context = {
        "project": project,
        "policies": selectors.pair_policies(project.pk),
        "exports": [(e, snapshot_summary(e)) for e in selectors.recent_exports(project.pk)],
        "can_derive": can_derive,
        "import_policy": IMPORT_POLICY,
        "form": form,
        "errors": errors,
    }
    return render(request, "feedback/data.html", context, status=422 if errors else 200)
