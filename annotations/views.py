"""Annotator and reviewer pages. Each view parses input, calls a feedback service or selector and
renders: the partial under templates/annotations/partials/ for htmx requests, the page otherwise."""

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.contrib.messages.views import SuccessMessageMixin
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from annotations import presentation, rendering
from annotations.forms import (
    AdjudicationForm,
    JudgmentForm,
    NewAccountForm,
    PromptSearchForm,
    SkipForm,
    TokenForm,
    form_error_message,
)
from annotations.timing import server_timed
from feedback import selectors, services
from feedback.errors import ServiceError
from feedback.models import Role
from feedback.models.projects import as_a
from feedback.models.tasks import SkipReason
from feedback.services.invitations import (
    accept_invitation,
    join_with_new_account,
    open_invitation,
)
from feedback.services.tokens import issue_token, revoke_token

# A refused submission is shown inline (htmx swaps 409 and 422): bad input is 422; anything
# that means "this task is no longer yours to answer" is 409 and offers the next task.
ERROR_STATUS = {"invalid": 422, "conflict": 409, "forbidden": 409, "not_found": 409}
REVIEW_PAGE_SIZE = 50


def signed_in(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """login_required that, for htmx requests, sends the whole page to the login form instead of
    swapping the login form into a piece of the page."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            login = redirect_to_login(request.htmx.current_url_abs_path or "/")
            return HttpResponseClientRedirect(login.url)
        return redirect_to_login(request.get_full_path())

    return guarded


def project_or_404(request: HttpRequest, project_id: int):
    project = selectors.projects_for(request.user).filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project, or you are not a member of it.")
    return project


def inline_error(
    request: HttpRequest, message: str, status: int = 422, *, project=None
) -> HttpResponse:
    """An error shown next to the controls that caused it; the annotator's choices stay put.
    With `project`, it offers to load the next task (the current one is no longer theirs)."""
    context = {"errors": [message], "next_project": project}
    response = render(request, "annotations/partials/_errors.html", context, status=status)
    if request.htmx:
        response = reswap(retarget(response, "#task-errors"), "innerHTML")
    return response


@dataclass(frozen=True)
class ProjectRow:
    summary: selectors.QueueSummary
    role: str | None  # None: staff who are not members (they review, but have no queue)
    can_review: bool
    can_manage: bool


@signed_in
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    roles = selectors.memberships_of(request.user)
    rows = [
        ProjectRow(
            summary=summary,
            role=roles.get(summary.project.pk),
            can_review=request.user.is_staff
            or roles.get(summary.project.pk) in (Role.REVIEWER, Role.ADMIN),
            can_manage=request.user.is_staff or roles.get(summary.project.pk) == Role.ADMIN,
        )
        for summary in selectors.queue_summaries_for(request.user)
    ]
    return render(request, "annotations/home.html", {"rows": rows})


def next_task_response(request: HttpRequest, project, *, errors: list[str] | None = None):
    """Lease (or re-show) the annotator's next task in `project` and render it."""
    try:
        assignment = services.next_task_for(annotator_id=request.user.pk, project_id=project.pk)
    except ServiceError as error:
        return render(request, "annotations/forbidden.html", {"message": error.message}, status=403)
    context = {
        "project": project,
        "assignment": assignment,
        "judged_today": selectors.judged_today(request.user, project.pk),
        "errors": errors or [],
        "likert": presentation.LIKERT_SCALE,
    }
    if not request.htmx:
        context["guidelines_html"] = rendering.render_markdown(project.guidelines)
    if assignment is not None:
        context["view"] = presentation.task_view(
            assignment.task_id,
            assignment.shown,
            rating_enabled=project.rating_enabled,
            shown_order=assignment.shown_order,
        )
        context["idempotency_key"] = presentation.idempotency_key(assignment)
        context["skip_reasons"] = [r for r in SkipReason if r != SkipReason.SKIP]
    template = "annotations/partials/_work.html" if request.htmx else "annotations/work.html"
    return render(request, template, context)


@signed_in
@server_timed
@require_GET
def work(request: HttpRequest, project_id: int) -> HttpResponse:
    return next_task_response(request, project_or_404(request, project_id))


@signed_in
@server_timed
@require_POST
def submit(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    """Store a judgment, then swap in the next task. A retry with the lease's idempotency key
    stores nothing new and shows the next task all the same."""
    project = project_or_404(request, project_id)
    form = JudgmentForm(request.POST)
    if not form.is_valid():
        return answer_error(request, project, form_error_message(form), 422)
    try:
        services.submit_judgment(
            annotator_id=request.user.pk, task_id=task_id, data=form.judgment_input()
        )
    except ServiceError as error:
        return answer_error(request, project, error.message, ERROR_STATUS[error.code])
    return next_task_response(request, project)


@signed_in
@server_timed
@require_POST
def skip(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    """Give the task back (a plain skip or a flag); it goes to someone else."""
    project = project_or_404(request, project_id)
    form = SkipForm(request.POST)
    if not form.is_valid():
        return answer_error(request, project, form_error_message(form), 422)
    try:
        services.skip_task(
            annotator_id=request.user.pk,
            task_id=task_id,
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
        )
    except ServiceError as error:
        return answer_error(request, project, error.message, ERROR_STATUS[error.code])
    return next_task_response(request, project)


@signed_in
@require_POST
def undo(request: HttpRequest, project_id: int) -> HttpResponse:
    """Take back the annotator's last judgment here and show its task again, to answer anew."""
    project = project_or_404(request, project_id)
    try:
        services.undo_last_judgment(annotator_id=request.user.pk, project_id=project.pk)
    except ServiceError as error:
        # Nothing to take back is no reason to offer another task: the error stays inline.
        return answer_error(request, project, error.message, 422)
    if not request.htmx:  # post, redirect, get: a reload must not take back another answer
        return redirect("annotations:work", project_id=project.pk)
    return next_task_response(request, project)


def answer_error(request: HttpRequest, project, message: str, status: int) -> HttpResponse:
    if request.htmx:
        return inline_error(request, message, status, project=project if status == 409 else None)
    # Without htmx (no JavaScript), show the same task again with the message above it.
    response = next_task_response(request, project, errors=[message])
    response.status_code = status
    return response


def reviewers_only(request: HttpRequest, project) -> HttpResponse | None:
    """A 403 page unless the user reviews or administers `project`."""
    if selectors.has_role(request.user, project.pk, Role.REVIEWER, Role.ADMIN):
        return None
    message = "Only reviewers and admins of this project see its reviews and adjudicate."
    return render(request, "annotations/forbidden.html", {"message": message}, status=403)


@signed_in
@require_GET
def review_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_or_404(request, project_id)
    if refused := reviewers_only(request, project):
        return refused
    show = request.GET.get("show", "all")
    tasks = selectors.tasks_for_review(
        project.pk, disagreements_only=show == "disagreements", flagged_only=show == "flagged"
    )
    page = Paginator(tasks, REVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    context = {
        "project": project,
        "page": page,
        "rows": presentation.review_rows(
            shown, selectors.review_counts([task.pk for task in shown])
        ),
        "show": show,
        "has_imported_verdicts": selectors.has_imported_verdicts(project.pk),
    }
    template = (
        "annotations/partials/_review_rows.html" if request.htmx else "annotations/review_list.html"
    )
    return render(request, template, context)


@signed_in
@require_GET
def prompt_list(request: HttpRequest, project_id: int) -> HttpResponse:
    """The prompt browser: the project's prompts, searchable, with their outputs and judgments
    counted; each opens on everything the project holds about it."""
    project = project_or_404(request, project_id)
    if refused := reviewers_only(request, project):
        return refused
    form = PromptSearchForm(request.GET, project_id=project.pk)
    search = form.cleaned_data if form.is_valid() else {}
    page = selectors.browse_prompts(
        project.pk,
        query=search.get("q", ""),
        split=search.get("split", ""),
        model_version_id=search["model_version"].pk if search.get("model_version") else None,
        has_tasks={"with": True, "without": False}.get(search.get("tasks", "")),
        before=search.get("before"),
    )
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "project": project,
        "form": form,
        "rows": [(row, presentation.prompt_snippet(row.prompt)) for row in page.rows],
        "older_than": page.older_than,
        "query": query.urlencode(),
        "searching": any(search.get(field) for field in ("q", "split", "model_version", "tasks")),
    }
    return render(request, "annotations/prompt_list.html", context)


@signed_in
@require_GET
def prompt_page(request: HttpRequest, project_id: int, prompt_id: int) -> HttpResponse:
    project = project_or_404(request, project_id)
    if refused := reviewers_only(request, project):
        return refused
    detail = selectors.prompt_detail(project.pk, prompt_id)
    if detail is None:
        raise Http404("No such prompt in this project.")
    prompt, outputs, tasks = presentation.browsed_prompt(detail)
    context = {
        "project": project,
        "prompt": detail.prompt,
        "view": {"prompt": prompt},
        "outputs": outputs,
        "tasks": tasks,
    }
    return render(request, "annotations/prompt_page.html", context)


def adjudicate(request: HttpRequest, task) -> str | None:
    """Apply the posted adjudication; the error message when it is refused."""
    form = AdjudicationForm(request.POST)
    if not form.is_valid():
        return form_error_message(form)
    try:
        services.adjudicate_task(
            reviewer_id=request.user.pk,
            task_id=task.pk,
            action=form.cleaned_data["action"],
            judgment_id=form.cleaned_data["judgment_id"],
            choice=form.cleaned_data["choice"] or None,
            ranking=form.cleaned_data["ranking"],
            note=form.cleaned_data["note"],
        )
    except ServiceError as error:
        return error.message
    return None


def set_gold(request: HttpRequest, task) -> str | None:
    """Make the task gold (its adjudication is the known answer) or not; the refusal, if any."""
    try:
        services.mark_gold(
            reviewer_id=request.user.pk, task_id=task.pk, is_gold=request.POST["gold"] == "1"
        )
    except ServiceError as error:
        return error.message
    return None


@signed_in
@require_http_methods(["GET", "POST"])
def review_task(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    """Every judgment of a task side by side; POST accepts one or overrides them, or makes the
    adjudicated answer the task's gold answer."""
    project = project_or_404(request, project_id)
    if refused := reviewers_only(request, project):
        return refused
    task = selectors.task_in_project(task_id, project.pk)
    if task is None:
        raise Http404("No such task in this project.")
    error = None
    if request.method == "POST":
        error = set_gold(request, task) if "gold" in request.POST else adjudicate(request, task)
        task.refresh_from_db()
    if error and request.htmx:
        return inline_error(request, error, 422)
    if request.method == "POST" and not error and not request.htmx:
        return redirect("annotations:review_task", project_id=project.pk, task_id=task.pk)
    view = presentation.task_view(
        task.pk, selectors.task_shown(task.pk), rating_enabled=project.rating_enabled
    )
    letters = {output.completion_id: output.letter for output in view.outputs}
    rows = presentation.judgment_rows(list(selectors.judgments_of_task(task.pk)), letters)
    adjudication = selectors.adjudication_of(task.pk)
    context = {
        "project": project,
        "task": task,
        "view": view,
        "rows": rows,
        "flags": list(selectors.flags_of_task(task.pk)),
        "disagree": len({row.answer_group for row in rows}) > 1,
        "adjudication": adjudication,
        "adjudication_summary": presentation.describe_adjudication(adjudication, letters),
        "errors": [error] if error else [],
    }
    template = (
        "annotations/partials/_adjudication.html"
        if request.htmx
        else "annotations/review_task.html"
    )
    return render(request, template, context)


# ---- API access ---------------------------------------------------------------------------


@signed_in
@require_http_methods(["GET", "POST"])
def api_access(request: HttpRequest) -> HttpResponse:
    """The user's API tokens (create, revoke) and the project ids the API's paths take. A new
    key is shown in the answer to the POST that made it and nowhere else: it is never stored."""
    form = TokenForm(request.POST if request.method == "POST" else None)
    issued, errors = None, []
    if form.is_bound:
        if form.is_valid():
            try:
                issued = issue_token(user_id=request.user.pk, name=form.cleaned_data["name"])
            except ServiceError as error:
                errors.append(error.message)
            else:
                form = TokenForm()
        else:
            errors.append(form_error_message(form))
    context = {
        "form": form,
        "issued": issued,
        "errors": errors,
        "tokens": selectors.api_tokens_of(request.user),
        "projects": selectors.projects_for(request.user).order_by("name"),
    }
    response = render(
        request, "annotations/api_access.html", context, status=422 if errors else 200
    )
    add_never_cache_headers(response)
    return response


@signed_in
@require_POST
def revoke_api_token(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = revoke_token(user_id=request.user.pk, token_id=token_id)
    except ServiceError as error:
        raise Http404(error.message) from None
    messages.success(
        request, f"Token \u201c{token.name}\u201d is revoked; requests with it are refused."
    )
    return redirect("annotations:api_access")


# ---- invitation links ----------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, key: str) -> HttpResponse:
    """An invitation link: someone signed in joins with a click; anyone else makes an account
    here, which signs them in. The key is in the path, so the page is never cached."""
    try:
        invitation = open_invitation(key)
    except ServiceError as error:
        response = render(request, "annotations/join.html", {"gone": error.message}, status=404)
        add_never_cache_headers(response)
        return response
    signed_in_already = request.user.is_authenticated
    form = None if signed_in_already else NewAccountForm(request.POST or None)
    errors: list[str] = []
    if request.method == "POST":
        try:
            if signed_in_already:
                membership = accept_invitation(key=key, user_id=request.user.pk)
            elif form.is_valid():
                membership = join_with_new_account(
                    key=key,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password"],
                )
                login(request, membership.user)
            else:
                errors.append(form_error_message(form))
        except ServiceError as error:
            errors.append(error.message)
        if not errors:
            messages.success(
                request,
                f"You are {as_a(membership.role)} in {invitation.project}.",
            )
            return redirect("annotations:home")
    context = {
        "invitation": invitation,
        "form": form,
        "errors": errors,
        "role": selectors.role_in(request.user, invitation.project_id)
        if signed_in_already
        else None,
    }
    response = render(request, "annotations/join.html", context, status=422 if errors else 200)
    add_never_cache_headers(response)
    return response


class PasswordChange(SuccessMessageMixin, auth_views.PasswordChangeView):
    """Django's password change (old password, new one twice, the validators in settings); the
    session stays signed in."""

    template_name = "registration/password_change.html"
    success_url = reverse_lazy("annotations:api_access")
    success_message = "Your password is changed."
