"""A project's pages for its reviewers and admins (the tabs of /insights/projects/<id>/):
leaderboard, annotator agreement, the preference data the judgments make, imports and tasks,
and settings. Each parses input, calls a feedback service or selector, and renders."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from feedback import charts, insights, leaderboards, selectors
from feedback.api.permissions import REVIEWERS
from feedback.errors import ServiceError
from feedback.forms import (
    ImportDeletionForm,
    ImportForm,
    InvitationForm,
    MemberForm,
    NewProjectForm,
    PairPolicyForm,
    ProjectDeletionForm,
    ProjectSettingsForm,
    PromptSetForm,
    TaskCreationForm,
    TaskDeletionForm,
    labelled_errors,
)
from feedback.ids import parse_id
from feedback.import_files import MAX_IMPORT_BYTES, uploaded_lines
from feedback.models import Project, Role
from feedback.models.projects import as_a
from feedback.services.import_deletion import delete_import
from feedback.services.imports import IMPORT_POLICY, import_jsonl
from feedback.services.invitations import create_invitation, revoke_invitation
from feedback.services.pairs import derive_pairs
from feedback.services.project_deletion import delete_project
from feedback.services.projects import (
    add_member_named,
    change_member_role,
    create_member_account,
    create_project,
    create_prompt_set,
    remove_member,
    update_project,
)
from feedback.services.tasks import create_tasks_from_completions, delete_untouched_tasks
from feedback.wording import counted, what_was_made


def reviewable_project(request, project_id: int) -> tuple[Project, bool]:
    """The project, if the user reviews or administers it, and whether they administer it."""
    role = selectors.role_in(request.user, project_id)
    if role is None:
        raise Http404("No such project.")
    if role not in REVIEWERS:
        raise PermissionDenied("Only the project's reviewers and admins see its insights.")
    return get_object_or_404(Project, pk=project_id), role == Role.ADMIN


# Problems shown on a page; the API's answer names every one (every bad line of an import, by
# reason).
SHOWN_PROBLEMS = 50


def submit_form(request, project, form, act, page: str) -> tuple[HttpResponse | None, list[str]]:
    """Run `act(request, project, form)` on a valid form. Done: its message is flashed and the
    answer redirects to `page` (post, redirect, get). Refused: the problems to show."""
    if not form.is_valid():
        return None, labelled_errors(form)
    try:
        said = act(request, project, form)
    except ServiceError as error:
        more = len(error.details) - SHOWN_PROBLEMS
        return None, [
            error.message,
            *error.details[:SHOWN_PROBLEMS],
            *([f"... and {more} more."] if more > 0 else []),
        ]
    messages.success(request, said)
    return redirect(page, project.pk), []


@login_required
def leaderboard(request, project_id: int):
    project, can_manage = reviewable_project(request, project_id)
    style_control = request.GET.get("style_control") == "1"
    board = leaderboards.leaderboard(project.pk, style_control=style_control)
    labels = [row.model for row in board.rows]
    context = {
        "project": project,
        "can_manage": can_manage,
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
            breaks=board.group_starts,
        ),
        "heatmap_svg": charts.heatmap(
            labels, board.win_rates, title="Observed win rate, row over column"
        ),
    }
    return render(request, "feedback/leaderboard.html", context)


@login_required
def agreement(request, project_id: int):
    project, can_manage = reviewable_project(request, project_id)
    report = insights.agreement_report(project.pk)
    context = {
        "project": project,
        "can_manage": can_manage,
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
    said = []
    for key, value in snapshot.filters.items():
        if key == "up_to_id" or value in (None, [], "") or UNSAID.get(key) == value:
            continue
        name = key.replace("_", " ")
        if value is True:  # a switch turned on: its name says it
            said.append(name)
        else:
            said.append(
                f"{name}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
            )
    return "; ".join([snapshot.format, *said])


def derive(request, project, form: PairPolicyForm) -> str:
    result = derive_pairs(project_id=project.pk, policy=form.policy())
    return (
        f"Policy \u201c{result.policy}\u201d: {counted(result.pairs, 'pairs')} "
        f"({counted(result.ties, 'ties')}) from {counted(result.judgments, 'judgments')}; "
        f"{counted(result.replaced, 'earlier pairs')} replaced."
    )


@login_required
@require_http_methods(["GET", "POST"])
def data(request, project_id: int):
    """Pairs per policy with their downloads, other exports, recent snapshots; admins derive."""
    project, can_manage = reviewable_project(request, project_id)
    form = PairPolicyForm(request.POST if request.method == "POST" else None)
    errors: list[str] = []
    if form.is_bound:
        if not can_manage:
            raise PermissionDenied("Only the project's admins derive preference pairs.")
        done, errors = submit_form(request, project, form, derive, "insights:data")
        if done:
            return done
    context = {
        "project": project,
        "policies": selectors.pair_policies(project.pk),
        "exports": [(e, snapshot_summary(e)) for e in selectors.recent_exports(project.pk)],
        "can_manage": can_manage,
        "import_policy": IMPORT_POLICY,
        "form": form,
        "errors": errors,
    }
    return render(request, "feedback/data.html", context, status=422 if errors else 200)


def import_file(request, project, form: ImportForm) -> str:
    """Import the uploaded file; what to tell the user. Raises ServiceError."""
    upload = form.cleaned_data["file"]
    result = import_jsonl(
        project_id=project.pk,
        user_id=request.user.pk,
        lines=uploaded_lines(upload),
        format=form.cleaned_data["import_format"],
        source=upload.name,
        dry_run=form.cleaned_data["dry_run"],
    )
    what = what_was_made(result.created) or "nothing new"
    lines = counted(result.lines, "lines")
    if result.batch is None:
        return (
            f"Checked {upload.name} ({result.format}, {lines}): all good; importing it would "
            f"create {what}. Nothing was kept."
        )
    return f"Imported {upload.name} ({result.format}, {lines}): {what}."


def open_tasks(request, project, form: TaskCreationForm) -> str:
    """Create the tasks the form asks for; what to tell the user. Raises ServiceError."""
    versions = form.cleaned_data["model_versions"]
    result = create_tasks_from_completions(
        project_id=project.pk,
        mode=form.cleaned_data["mode"],
        model_version_ids=[v.pk for v in versions] or None,
        judgments_wanted=form.cleaned_data["judgments_wanted"],
    )
    return result.summary(form.cleaned_data["mode"])


def delete_tasks(request, project, form: TaskDeletionForm) -> str:
    deleted = delete_untouched_tasks(project_id=project.pk, mode=form.cleaned_data["mode"] or None)
    return f"{counted(deleted, 'untouched open tasks')} deleted."


def delete_batch(request, project, form: ImportDeletionForm) -> str:
    return delete_import(project_id=project.pk, batch_id=form.cleaned_data["batch"]).summary()


def make_prompt_set(request, project, form: PromptSetForm) -> str:
    source = form.cleaned_data["source"]
    prompt_set = create_prompt_set(
        project_id=project.pk,
        name=form.cleaned_data["name"],
        import_batch_id=int(source) if source else None,
        split=form.cleaned_data["split"] or None,
    )
    return f"Prompt set \u201c{prompt_set.name}\u201d: {prompt_set.prompts.count()} prompts."


@login_required
@require_http_methods(["GET", "POST"])
def imports(request, project_id: int):
    """Admins import JSONL files and turn the outputs into tasks; reviewers see what came in."""
    project, can_manage = reviewable_project(request, project_id)
    posted, errors = None, []
    if request.method == "POST":
        # Checked before request.POST is read: reading it stores the whole upload.
        if not can_manage:
            raise PermissionDenied("Only the project's admins import files and create tasks.")
        if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_IMPORT_BYTES + (1 << 20):
            errors = [f"The file is over {MAX_IMPORT_BYTES >> 20} MiB; split it."]
        else:
            posted = request.POST.get("action")
    import_form = ImportForm(
        request.POST if posted == "import" else None,
        request.FILES if posted == "import" else None,
    )
    task_form = TaskCreationForm(project, request.POST if posted == "tasks" else None)
    batches = list(selectors.recent_imports(project.pk))
    set_form = PromptSetForm(batches, request.POST if posted == "prompt_set" else None)
    # Its "mode" shares a name with the task form's: ids of its own keep each label on its field.
    deletion_form = TaskDeletionForm(
        request.POST if posted == "delete_tasks" else None, auto_id="id_delete_%s"
    )
    bound = {
        "import": (import_form, import_file),
        "delete_import": (
            ImportDeletionForm(request.POST if posted == "delete_import" else None),
            delete_batch,
        ),
        "tasks": (task_form, open_tasks),
        "delete_tasks": (deletion_form, delete_tasks),
        "prompt_set": (set_form, make_prompt_set),
    }.get(posted)
    if bound is not None:
        done, errors = submit_form(request, project, *bound, "insights:imports")
        if done:
            return done
    context = {
        "project": project,
        "can_manage": can_manage,
        "contents": selectors.project_contents(project.pk),
        "batches": batches,
        "prompt_sets": selectors.prompt_sets_of(project.pk),
        "import_form": import_form,
        "task_form": task_form,
        "set_form": set_form,
        "deletion_form": deletion_form,
        "posted": posted,
        "errors": errors,
    }
    status = 413 if errors and posted is None else 422 if errors else 200
    return render(request, "feedback/imports.html", context, status=status)


def save_settings(request, project, form: ProjectSettingsForm) -> str:
    update_project(project_id=project.pk, **form.cleaned_data)
    return "Settings saved."


def add_named_member(request, project, form: MemberForm) -> str:
    membership = add_member_named(project_id=project.pk, **form.cleaned_data)
    return f"{membership.user.username} is now {as_a(membership.role)} here."


def shown_once(request, posted: str | None, action: str, form_class, make):
    """A form whose result (a password, a link's key) is in this answer only, never stored, so
    it renders instead of redirecting: (form, `make(cleaned_data)` or None, problems)."""
    form = form_class(request.POST if posted == action else None, prefix=action)
    if posted != action:
        return form, None, []
    if not form.is_valid():
        return form, None, labelled_errors(form)
    try:
        made = make(form.cleaned_data)
    except ServiceError as error:
        return form, None, [error.message]
    return form_class(prefix=action), made, []


def invitation_link(request, project, data: dict) -> dict:
    issued = create_invitation(project_id=project.pk, created_by_id=request.user.pk, **data)
    link = request.build_absolute_uri(reverse("annotations:join", args=[issued.key]))
    return {"link": link, "role": issued.invitation.role}


def posted_id(request, field: str) -> int:
    """An id posted by a row's button; 0, which matches nothing, when it is not a number."""
    return parse_id(request.POST.get(field, "")) or 0


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request, project_id: int):
    """Admins change guidelines, judgment kinds and overlap, and who works on the project, or
    delete it; site staff also make accounts for newcomers."""
    project, can_manage = reviewable_project(request, project_id)
    if not can_manage:
        raise PermissionDenied("Only the project's admins change its settings and members.")
    posted = request.POST.get("action") if request.method == "POST" else None
    deletion_form = ProjectDeletionForm(
        request.POST if posted == "delete_project" else None, project=project
    )
    deletion_errors: list[str] = []
    if posted == "delete_project":
        if deletion_form.is_valid():
            try:
                deleted = delete_project(project_id=project.pk)
            except ServiceError as error:
                deletion_errors = [error.message]
            else:
                messages.success(request, deleted.summary())
                return redirect("annotations:home")
        else:
            deletion_errors = labelled_errors(deletion_form)
    if posted in ("role", "remove", "revoke_invite"):
        user_id = posted_id(request, "user_id")
        try:
            if posted == "revoke_invite":
                revoke_invitation(
                    project_id=project.pk, invitation_id=posted_id(request, "invitation_id")
                )
                messages.success(request, "Invitation link revoked; it no longer works.")
            elif posted == "role":
                change_member_role(
                    project_id=project.pk, user_id=user_id, role=request.POST.get("role", "")
                )
                messages.success(request, "Role changed.")
            else:
                remove_member(project_id=project.pk, user_id=user_id)
                messages.success(request, "Member removed; their judgments stay.")
        except ServiceError as error:
            messages.error(request, error.message)
        return redirect("insights:settings", project.pk)
    initial = {
        "guidelines": project.guidelines,
        "modes": project.enabled_modes,
        "overlap": project.overlap,
        "gold_percent": project.gold_percent,
    }
    settings_form = ProjectSettingsForm(
        request.POST if posted == "settings" else None, initial=initial
    )
    member_form = MemberForm(request.POST if posted == "member" else None)
    if posted == "account" and not request.user.is_staff:
        raise PermissionDenied("Only site staff make accounts.")
    account_form, new_account, account_errors = shown_once(
        request,
        posted,
        "account",
        MemberForm,
        lambda data: create_member_account(project_id=project.pk, **data),
    )
    invitation_form, new_invitation, invitation_errors = shown_once(
        request,
        posted,
        "invite",
        InvitationForm,
        lambda data: invitation_link(request, project, data),
    )
    bound = {
        "settings": (settings_form, save_settings),
        "member": (member_form, add_named_member),
    }.get(posted)
    errors: list[str] = []
    if bound is not None:
        done, errors = submit_form(request, project, *bound, "insights:settings")
        if done:
            return done
    context = {
        "project": project,
        "can_manage": can_manage,
        "settings_form": settings_form,
        "member_form": member_form,
        "members": selectors.members_of(project.pk),
        "account_form": account_form,
        "new_account": new_account,
        "account_errors": account_errors,
        "invitation_form": invitation_form,
        "new_invitation": new_invitation,
        "invitation_errors": invitation_errors,
        "invitations": selectors.open_invitations_of(project.pk),
        "roles": Role.choices,
        "posted": posted,
        "errors": errors,
        "deletion_form": deletion_form,
        "deletion_errors": deletion_errors,
    }
    response = render(
        request,
        "feedback/settings.html",
        context,
        status=422 if errors or account_errors or invitation_errors or deletion_errors else 200,
    )
    if new_account is not None or new_invitation is not None:
        add_never_cache_headers(response)  # the page holds a password or a link's key
    return response


@login_required
@require_http_methods(["GET", "POST"])
def new_project(request):
    """Site staff start a project; they become its first admin."""
    if not request.user.is_staff:
        raise PermissionDenied("Only site staff start projects; ask one to make yours.")
    form = NewProjectForm(request.POST or None, initial={"modes": ["pairwise"], "overlap": 1})
    errors: list[str] = []
    if form.is_bound:
        if form.is_valid():
            try:
                project = create_project(**form.cleaned_data, admin_id=request.user.pk)
            except ServiceError as error:
                errors = [error.message]
            else:
                messages.success(
                    request,
                    f"{project.name} is ready. Import your models' outputs, then create tasks.",
                )
                return redirect("insights:imports", project.pk)
        else:
            errors = labelled_errors(form)
    return render(
        request,
        "feedback/new_project.html",
        {"form": form, "errors": errors},
        status=422 if errors else 200,
    )
