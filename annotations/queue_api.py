"""JSON endpoints for the annotation queue: next task and submit, for scripted clients and the
throughput benchmark. Session-authenticated (CSRF applies to POST), and backed by the same
services as the pages, so a rule is enforced once."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from annotations.presentation import idempotency_key
from annotations.timing import server_timed
from feedback import services
from feedback.errors import ServiceError
from feedback.models import Assignment
from feedback.services import JudgmentInput

ERROR_STATUS = {"invalid": 400, "conflict": 409, "forbidden": 403, "not_found": 404}


def error_response(message: str, status: int, details: list[str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "details": details or []}, status=status)


def lease_payload(assignment: Assignment | None) -> dict | None:
    """The leased task: its prompt, and its outputs in the order this annotator is shown them."""
    if assignment is None:
        return None
    shown = assignment.shown
    outputs = shown.outputs
    return {
        "task_id": assignment.task_id,
        "mode": shown.mode,
        "prompt": {"text": shown.prompt_text, "messages": shown.prompt_messages},
        "idempotency_key": idempotency_key(assignment),
        "expires_at": assignment.expires_at.isoformat(),
        "outputs": [
            {"completion_id": cid, "position": outputs[cid].position, "text": outputs[cid].text}
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


# JSON field -> the types JudgmentInput takes (None allowed for every optional field).
JSON_FIELDS: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "idempotency_key": (str,),
    "choice": (str,),
    "strength": (str,),
    "ranking": (list,),
    "ratings": (dict,),
    "rationale": (str,),
    "time_spent_ms": (int,),
    "flags": (list,),
}


def judgment_input(body: object) -> JudgmentInput:
    """The submission in a JSON body; shapes are checked here, the rules by the service."""
    if not isinstance(body, dict):
        raise ValueError("Send a JSON object.")
    unknown = sorted(set(body) - set(JSON_FIELDS))
    if unknown:
        raise ValueError(f"Unknown fields {unknown}; send {', '.join(JSON_FIELDS)}.")
    for name, types in JSON_FIELDS.items():
        value = body.get(name)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise ValueError(f"{name!r} must be a {types[0].__name__}.")
    if not body.get("kind") or not body.get("idempotency_key"):
        raise ValueError("Send the judgment's kind and the lease's idempotency_key.")
    return JudgmentInput(
        kind=body["kind"],
        idempotency_key=body["idempotency_key"],
        choice=body.get("choice"),
        strength=body.get("strength"),
        ranking=body.get("ranking"),
        ratings=body.get("ratings"),
        rationale=body.get("rationale") or "",
        time_spent_ms=body.get("time_spent_ms"),
        flags=body.get("flags") or [],
    )


@server_timed
@require_POST
def submit(request: HttpRequest, project_id: int, task_id: int) -> JsonResponse:
    """Store a judgment and return the next task. Body: JSON with JudgmentInput's fields
    ("ranking" as groups of completion ids best first, "ratings" as {completion id: score})."""
    if not request.user.is_authenticated:
        return error_response("Sign in first.", 401)
    try:
        body = json.loads(request.body or b"{}")
    except json.JSONDecodeError:
        return error_response("The body is not JSON.", 400)
    try:
        data = judgment_input(body)
    except ValueError as error:
        return error_response(str(error), 400)
    try:
        judgment = services.submit_judgment(
            annotator_id=request.user.pk, task_id=task_id, data=data
        )
        payload = next_payload(request, project_id)
    except ServiceError as error:
        return error_response(error.message, ERROR_STATUS[error.code], error.details)
    return JsonResponse({"judgment_id": judgment.pk, **payload}, status=201)
