"""JSON endpoints for the annotation queue: next task and submit, for scripted clients and the
throughput benchmark. Session-authenticated (CSRF applies to POST), and backed by the same
services as the pages, so a rule is enforced once."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from annotations.forms import JudgmentForm, form_error_message
from annotations.presentation import idempotency_key
from annotations.timing import server_timed
from feedback import services
from feedback.errors import ServiceError
from feedback.models import Assignment, TaskItem

ERROR_STATUS = {"invalid": 400, "conflict": 409, "forbidden": 403, "not_found": 404}


def error_response(message: str, status: int, details: list[str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "details": details or []}, status=status)


def lease_payload(assignment: Assignment | None) -> dict | None:
    """The leased task with its outputs in the order this annotator is shown them."""
    if assignment is None:
        return None
    rows = list(
        TaskItem.objects.filter(task_id=assignment.task_id).values_list(
            "completion_id", "position", "completion__text", "task__mode"
        )
    )
    items = {cid: (position, text) for cid, position, text, _ in rows}
    mode = rows[0][3]
    return {
        "task_id": assignment.task_id,
        "mode": mode,
        "idempotency_key": idempotency_key(assignment),
        "expires_at": assignment.expires_at.isoformat(),
        "outputs": [
            {
                "completion_id": cid,
                "position": items[cid][0],
                "text": items[cid][1],
            }
            for cid in assignment.shown_order
        ],
    }


def next_payload(request: HttpRequest, project_id: int) -> dict:
    assignment = services.next_task_for(annotator_id=request.user.pk, project_id=project_id)
    return {"task": lease_payload(assignment)}


@server_timed
@require_GET
def next_task(request: HttpRequest, project_id: int) -> JsonResponse:
    if not request.user.is_authenticated:
        return error_response("Sign in first.", 401)
    try:
        return JsonResponse(next_payload(request, project_id))
    except ServiceError as error:
        return error_response(error.message, ERROR_STATUS[error.code], error.details)


@server_timed
@require_POST
def submit(request: HttpRequest, project_id: int, task_id: int) -> JsonResponse:
    """Store a judgment (JSON body as JudgmentForm's fields) and return the next task."""
    if not request.user.is_authenticated:
        return error_response("Sign in first.", 401)
    try:
        body = json.loads(request.body or b"{}")
    except json.JSONDecodeError:
        return error_response("Send a JSON object.", 400)
    if not isinstance(body, dict):
        return error_response("Send a JSON object.", 400)
    if isinstance(body.get("ranking"), list):
        body["ranking"] = json.dumps(body["ranking"])
    ratings = body.pop("ratings", None) or {}
    if not isinstance(ratings, dict):
        return error_response("Ratings map completion ids to scores.", 400)
    form = JudgmentForm({**body, **{f"rating-{cid}": score for cid, score in ratings.items()}})
    if not form.is_valid():
        return error_response(form_error_message(form), 400)
    try:
        judgment = services.submit_judgment(
            annotator_id=request.user.pk, task_id=task_id, data=form.judgment_input()
        )
        payload = next_payload(request, project_id)
    except ServiceError as error:
        return error_response(error.message, ERROR_STATUS[error.code], error.details)
    return JsonResponse({"judgment_id": judgment.pk, **payload}, status=201)
