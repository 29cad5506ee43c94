"""Training pages: launch and follow alignment rounds, the model registry, side-by-side comparisons.

Reviewers and admins of a project (and staff) see these pages; only admins act. Each view parses
input, calls one service or selector and renders: the partial under templates/training/partials/
for htmx requests, the page otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from annotations import rendering
from annotations.presentation import PromptView, rendered_prompt
from annotations.views import signed_in
from feedback import selectors as feedback_selectors
from feedback.errors import ServiceError
from feedback.ids import parse_id
from feedback.models import ModelVersion
from feedback.services.projects import delete_model_version, rename_model_version
from feedback.wording import counted, one_or_many
from training import comparisons, rounds, selectors
from training.forms import (
    BlindTasksForm,
    CompareForm,
    GenerateForm,
    LaunchRoundForm,
    form_error_message,
)

ERROR_STATUS = {"invalid": 422, "conflict": 409, "forbidden": 403, "not_found": 404}
COMPARISON_PAGE_SIZE = 20
VIEW_MESSAGE = "Only reviewers and admins of this project see its training pages."
MANAGE_MESSAGE = "Only admins of this project launch and steer rounds."


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "training/forbidden.html", {"message": message}, status=403)


def project_or_404(request: HttpRequest, project_id: int):
    project = feedback_selectors.projects_for(request.user).filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project, or you are not a member of it.")
    return project


def checked(request: HttpRequest, project, manage: bool) -> HttpResponse | None:
    """A 403 page when the user may not see (or, with `manage`, act on) the project; else None."""
    if not selectors.can_view(request.user, project.pk):
        return forbidden(request, VIEW_MESSAGE)
    if manage and not selectors.can_manage(request.user, project.pk):
        return forbidden(request, MANAGE_MESSAGE)
    return None


def for_project(*, manage: bool = False):
    """Resolve `project_id` to a project the user may see (or manage) and pass it on."""

    def decorate(view):
        @functools.wraps(view)
        @signed_in
        def guarded(request: HttpRequest, project_id: int, *args, **kwargs):
            project = project_or_404(request, project_id)
            return checked(request, project, manage) or view(request, project, *args, **kwargs)

        return guarded

    return decorate


def for_round(*, manage: bool = False):
    """Resolve `round_id` to a round of a project the user may see (or manage) and pass it on."""

    def decorate(view):
        @functools.wraps(view)
        @signed_in
        def guarded(request: HttpRequest, round_id: int, *args, **kwargs):
            round_ = selectors.round_with_relations(round_id)
            if round_ is None:
                raise Http404("No such round.")
            project_or_404(request, round_.project_id)
            return checked(request, round_.project, manage) or view(
                request, round_, *args, **kwargs
            )

        return guarded

    return decorate


# ---- Overview and rounds ----------------------------------------------------------------------


@signed_in
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(
        request, "training/index.html", {"overviews": selectors.project_overviews(request.user)}
    )


@require_GET
@for_project()
def round_list(request: HttpRequest, project) -> HttpResponse:
    return render(
        request,
        "training/round_list.html",
        {
            "project": project,
            "rounds": selectors.rounds_of_project(project.pk),
            "can_manage": selectors.can_manage(request.user, project.pk),
        },
    )


@require_http_methods(["GET", "POST"])
@for_project(manage=True)
def launch(request: HttpRequest, project) -> HttpResponse:
    form = LaunchRoundForm(project, request.POST if request.method == "POST" else None)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            round_ = rounds.launch_round(
                project_id=project.pk,
                policy_id=data["policy"].pk,
                prompt_set_id=data["prompt_set"].pk,
                method=data["method"],
                hyperparameters=form.hyperparameters(),
                samples_per_prompt=data["samples_per_prompt"],
                judgments_wanted=data["judgments_wanted"],
                mix_parent_outputs=data["mix_parent_outputs"],
                created_by_id=request.user.pk,
            )
        except ServiceError as error:
            errors = [error.message, *error.details]
        else:
            messages.success(request, f"Round {round_.number} launched: sampling has been queued.")
            return redirect("training:round_detail", round_id=round_.pk)
    status = 422 if request.method == "POST" else 200
    context = {
        "project": project,
        "form": form,
        "errors": errors,
        "managed_projects": managed_projects(request),
    }
    return render(request, "training/launch.html", context, status=status)


def managed_projects(request: HttpRequest):
    return [
        p
        for p in selectors.reviewable_projects(request.user)
        if selectors.can_manage(request.user, p.pk)
    ]


@require_GET
@for_project(manage=True)
def launch_hyperparameters(request: HttpRequest, project) -> HttpResponse:
    """The hyperparameter sections for the chosen method; sections both methods share keep what
    the admin already typed."""
    form = LaunchRoundForm.for_method(project, request.GET)
    return render(request, "training/partials/_hyperparameters.html", {"form": form})


@require_GET
@for_round()
def round_detail(request: HttpRequest, round_) -> HttpResponse:
    return render(request, "training/round_detail.html", round_context(request, round_))


def round_context(request: HttpRequest, round_, action_error: str = "") -> dict:
    return {
        "round": round_,
        "project": round_.project,
        "progress": selectors.round_progress(round_),
        "settings_json": selectors.pretty_json(round_.hyperparameters),
        "can_manage": selectors.can_manage(request.user, round_.project_id),
        "action_error": action_error,
    }


@require_GET
@for_round()
def round_live(request: HttpRequest, round_) -> HttpResponse:
    """The live panel, polled every 2 s: 204 when nothing changed, 286 (stop polling) once the
    round has ended."""
    if not request.htmx:
        return redirect("training:round_detail", round_id=round_.pk)
    is_finished = round_.state in selectors.FINISHED_STATES
    if not is_finished and request.GET.get("v") == selectors.live_fingerprint(round_):
        return HttpResponse(status=204)
    context = round_context(request, round_)
    if is_finished:
        html = render_to_string("training/partials/_round_live.html", context, request=request)
        return HttpResponseStopPolling(html)
    return render(request, "training/partials/_round_live.html", context)


ROUND_ACTIONS: dict[str, Callable] = {
    "cancel": lambda round_, user: rounds.cancel_round(round_.pk),
    "resume": lambda round_, user: rounds.resume_round(round_.pk),
    "move-on": lambda round_, user: rounds.start_training(round_.pk, by_user_id=user.pk),
    "next": lambda round_, user: rounds.next_round(round_.pk, created_by_id=user.pk),
}


@require_POST
@for_round(manage=True)
def round_action(request: HttpRequest, round_, action: str) -> HttpResponse:
    """Cancel, resume, move on (train with the judgments so far) or launch the next round."""
    service = ROUND_ACTIONS.get(action)
    if service is None:
        raise Http404("No such action.")
    try:
        result = service(round_, request.user)
    except ServiceError as error:
        return action_failed(request, round_, error)
    if action == "next":
        url = reverse("training:round_detail", kwargs={"round_id": result.pk})
        if request.htmx:
            return HttpResponseClientRedirect(url)
        messages.success(request, f"Round {result.number} launched from round {round_.number}.")
        return redirect(url)
    if not request.htmx:
        return redirect("training:round_detail", round_id=round_.pk)
    fresh = selectors.round_with_relations(round_.pk)
    return render(request, "training/partials/_round_live.html", round_context(request, fresh))


def action_failed(request: HttpRequest, round_, error: ServiceError) -> HttpResponse:
    fresh = selectors.round_with_relations(round_.pk)
    context = round_context(request, fresh, action_error=error.message)
    # 409 (not 404 or 403) so htmx swaps the message in next to the buttons.
    status = 422 if error.code == "invalid" else 409
    template = (
        "training/partials/_round_live.html" if request.htmx else "training/round_detail.html"
    )
    return render(request, template, context, status=status)


# ---- Model registry ---------------------------------------------------------------------------


@require_GET
@for_project()
def registry(request: HttpRequest, project) -> HttpResponse:
    return render(
        request,
        "training/registry.html",
        {
            "project": project,
            "tree": selectors.version_tree(project.pk),
            "can_manage": selectors.can_manage(request.user, project.pk),
        },
    )


@require_POST
@for_project(manage=True)
def rename_version(request: HttpRequest, project, version_id: int) -> HttpResponse:
    try:
        version = rename_model_version(
            project_id=project.pk, version_id=version_id, name=request.POST.get("name", "")
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Model version renamed {version.name!r}.")
    return redirect(f"{reverse('training:registry', args=[project.pk])}#version-{version_id}")


@require_POST
@for_project(manage=True)
def delete_version(request: HttpRequest, project, version_id: int) -> HttpResponse:
    try:
        name = delete_model_version(project_id=project.pk, version_id=version_id)
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Model version {name!r} deleted.")
    return redirect("training:registry", project_id=project.pk)


@signed_in
@require_GET
def adapter_download(request: HttpRequest, version_id: int) -> HttpResponse:
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        raise Http404("No such model version.")
    project = project_or_404(request, version.project_id)
    refusal = checked(request, project, manage=False)
    if refusal is not None:
        return refusal
    folder = selectors.adapter_directory(version)
    if folder is None:
        raise Http404("This version has no adapter stored on the server.")
    response = StreamingHttpResponse(
        selectors.adapter_zip_chunks(selectors.adapter_files(folder)),
        content_type="application/zip",
    )
    name = slugify(f"{project.name}-{version.name}") or f"version-{version.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}-adapter.zip"'
    return response


# ---- Side by side -----------------------------------------------------------------------------


@require_GET
@for_project()
def compare(request: HttpRequest, project) -> HttpResponse:
    # Missing choices fall back to the defaults, so "compare with parent" links need only a and b.
    defaults = comparison_defaults(project)
    data = {**defaults, **request.GET.dict()}
    is_complete = bool(data.get("a") and data.get("b"))
    form = CompareForm(project, data if is_complete else None, initial=defaults)
    comparison, page, errors, query = None, None, [], ""
    show = "all"
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        show = data["show"]
        try:
            comparison = comparisons.compare_versions(
                project_id=project.pk,
                version_a_id=data["a"].pk,
                version_b_id=data["b"].pk,
                prompt_set_id=data["prompt_set"].pk if data["prompt_set"] else None,
            )
        except ServiceError as error:
            errors.append(error.message)
        else:
            rows = comparisons.shown_rows(comparison.rows, show)
            query = urlencode(
                {
                    "a": data["a"].pk,
                    "b": data["b"].pk,
                    "prompt_set": data["prompt_set"].pk if data["prompt_set"] else "",
                    "show": show,
                }
            )
            page = Paginator(rows, COMPARISON_PAGE_SIZE).get_page(request.GET.get("page"))
            page.object_list = [
                RenderedRow.of(row) for row in comparisons.shown(list(page.object_list))
            ]
    context = {
        "project": project,
        "form": form,
        "comparison": comparison,
        "page": page,
        "show": show,
        "errors": errors,
        "can_manage": selectors.can_manage(request.user, project.pk),
        "sides": comparison_sides(comparison),
        "query": query,
    }
    return render(
        request,
        page_or_partial(request, "training/compare.html", "training/partials/_comparison.html"),
        context,
    )


@dataclass(frozen=True)
class RenderedRow:
    """A row of the side-by-side page with its prompt and outputs rendered as annotators see
    them (markdown, code, chat turns), untrusted text made safe (annotations/rendering.py)."""

    row: comparisons.PromptRow
    prompt: PromptView
    html_a: SafeString | None
    html_b: SafeString | None

    @classmethod
    def of(cls, row: comparisons.PromptRow) -> RenderedRow:
        def html(completion):
            return None if completion is None else rendering.render_markdown(completion.text)

        return cls(
            row,
            rendered_prompt(row.prompt.text, row.prompt.messages),
            html(row.completion_a),
            html(row.completion_b),
        )


def page_or_partial(request: HttpRequest, page: str, partial: str) -> str:
    """The partial for htmx swaps; the whole page for normal loads and for htmx restoring history
    (it asks for a URL whose snapshot it no longer holds and needs the whole page)."""
    if request.htmx and not request.htmx.history_restore_request:
        return partial
    return page


def comparison_sides(comparison) -> list[tuple]:
    """(letter, version, prompts it has no output for, whether it can generate them)."""
    if comparison is None:
        return []
    return [
        (
            "A",
            comparison.version_a,
            comparison.missing_a,
            comparisons.can_generate(comparison.version_a),
        ),
        (
            "B",
            comparison.version_b,
            comparison.missing_b,
            comparisons.can_generate(comparison.version_b),
        ),
    ]


def comparison_defaults(project) -> dict:
    """Newest version against its parent (or the one before it), on the first prompt set."""
    versions = list(selectors.versions_of_project(project.pk).reverse()[:2])
    defaults = {"show": "all"}
    if versions:
        newest = versions[0]
        defaults["a"] = newest.pk
        other = newest.parent_id or (versions[1].pk if len(versions) > 1 else None)
        if other:
            defaults["b"] = other
    first_set = selectors.prompt_sets_with_counts(project.pk).first()
    if first_set is not None:
        defaults["prompt_set"] = first_set.pk
    return defaults


def back_to_comparison(project, a: int, b: int, prompt_set: int | None) -> HttpResponse:
    query = urlencode({"a": a, "b": b, "prompt_set": prompt_set or ""})
    return redirect(f"{reverse('training:compare', kwargs={'project_id': project.pk})}?{query}")


@require_POST
@for_project(manage=True)
def compare_blind(request: HttpRequest, project) -> HttpResponse:
    """Turn the comparison into blind pairwise tasks for annotators."""
    form = BlindTasksForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_error_message(form))
        return redirect("training:compare", project_id=project.pk)
    data = form.cleaned_data
    try:
        result = comparisons.create_blind_tasks(
            project_id=project.pk,
            version_a_id=data["a"],
            version_b_id=data["b"],
            prompt_set_id=data["prompt_set"],
            judgments_wanted=data["judgments_wanted"],
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        text = f"Created {counted(len(result.created), 'blind pairwise tasks')}."
        if result.already_there:
            text += f" {counted(result.already_there, 'pairs')} already had a task."
        if result.missing_outputs:
            lack = one_or_many(result.missing_outputs, "lacks", "lack")
            text += (
                f" {counted(result.missing_outputs, 'prompts')} {lack} an output of one version."
            )
        messages.success(request, text)
    return back_to_comparison(project, data["a"], data["b"], data["prompt_set"])


@require_POST
@for_project(manage=True)
def compare_generate(request: HttpRequest, project) -> HttpResponse:
    """Queue a generate job for the prompts a version has not answered."""
    form = GenerateForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_error_message(form))
        return redirect("training:compare", project_id=project.pk)
    data = form.cleaned_data
    try:
        job = comparisons.queue_missing_outputs(
            project_id=project.pk,
            version_id=data["version"],
            prompt_set_id=data["prompt_set"],
            created_by_id=request.user.pk,
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        count = len(job.config["prompt_ids"])
        messages.success(
            request, f"Queued generate job #{job.pk} for {count} prompt{'s' if count != 1 else ''}."
        )
    a, b = parse_id(request.POST.get("a", "")), parse_id(request.POST.get("b", ""))
    if a and b:
        return back_to_comparison(project, a, b, data["prompt_set"])
    return redirect("training:compare", project_id=project.pk)
