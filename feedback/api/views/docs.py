"""The API reference page, built from the OpenAPI schema."""

import functools
import re

from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework import renderers
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

# The reference's sections, by an endpoint's resource: the first word of its path after
# /api/v1/, or after /api/v1/projects/{project_id}/.
API_SECTIONS = {
    "Projects and members": {"projects", "members", "invitations"},
    "Data in": {"imports", "prompts", "completions", "model-versions", "prompt-sets"},
    "Tasks and judging": {"tasks", "next-task", "undo", "judgments"},
    "Data out": {"pairs", "exports", "leaderboard", "agreement"},
    "Training": {"rounds", "jobs"},
    "Tokens": {"tokens"},
}


def api_section(path: str) -> str:
    words = [part for part in path.split("/")[3:] if part and not part.startswith("{")]
    resource = words[1] if words[0] == "projects" and len(words) > 1 else words[0]
    return next((name for name, found in API_SECTIONS.items() if resource in found), "Other")


def field_type(spec: dict, components: dict) -> str:
    """A schema property in a few words: its type, or the values an enum takes."""
    if "$ref" in spec or "allOf" in spec:
        ref = spec.get("$ref") or spec["allOf"][0]["$ref"]
        target = components[ref.rsplit("/", 1)[-1]]
        return " | ".join(map(str, target["enum"])) if "enum" in target else target.get("type", "")
    if spec.get("type") == "array":
        return f"list of {field_type(spec.get('items', {}), components)}"
    return spec.get("type", "")


def body_fields(operation: dict, components: dict) -> list[dict]:
    """The writable fields of an operation's JSON body, from its request schema."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = body.get("schema", {}).get("$ref")
    if ref is None:
        return []
    schema = components[ref.rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": field_type(spec, components),
            "required": name in required,
            "description": spec.get("description", ""),
        }
        for name, spec in schema.get("properties", {}).items()
        if not spec.get("readOnly")
    ]


def unwrapped(text: str) -> str:
    """A docstring's paragraphs with their lines joined: it was wrapped for the source file."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text.strip())


@functools.cache
def documented_operations() -> tuple[dict, dict[str, list[dict]]]:
    """The OpenAPI schema and its operations by section, generated once per process (they only
    change with the code)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema.get("components", {}).get("schemas", {})
    sections: dict[str, list[dict]] = {name: [] for name in [*API_SECTIONS, "Other"]}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            sections[api_section(path)].append(
                {
                    "anchor": re.sub(r"[^a-z0-9_]+", "-", f"{method} {path}").strip("-"),
                    "path": path,
                    "method": method.upper(),
                    "summary": unwrapped(operation.get("description") or ""),
                    "parameters": operation.get("parameters", []),
                    "fields": body_fields(operation, components),
                    "request": sorted(operation.get("requestBody", {}).get("content", {})),
                    "responses": sorted(operation.get("responses", {})),
                }
            )
    return schema, {name: ops for name, ops in sections.items() if ops}


class ApiDocs(APIView):
    """A readable, offline page generated from the OpenAPI schema (no CDN assets)."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [renderers.TemplateHTMLRenderer]

    @extend_schema(exclude=True)
    def get(self, request):
        schema, sections = documented_operations()
        return render(request, "feedback/api_docs.html", {"schema": schema, "sections": sections})
