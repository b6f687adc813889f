"""The OpenAPI document as the API answers: what FastAPI generates, completed with what the
hub's middleware and handlers send that FastAPI cannot see.

`install_openapi(app)` makes `app.openapi()`:
- name every operation by its endpoint function (`operation_id`, see `operation_id()`):
  stable across paths and FastAPI versions, and unique (checked here);
- describe every error as RFC 9457 problem details (`application/problem+json`, schema
  `Problem`), which is what `hub.api.problems` sends, FastAPI's own 422 included;
- document the errors each operation can meet before its handler: 401 and 403 where it
  takes credentials (`RequestGuard`, `require_roles`), 400, 408, 413 and 422 where it
  reads a body (unparseable, late, too large, invalid), 422 where it takes parameters,
  404 where its path names something;
- document the `X-Request-ID` response header on every response (`hub.api.observe`).

`python -m hub.api.openapi` rewrites `contracts/openapi.json`; a test fails when the
checked-in document drifts from the app's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.routing import APIRoute

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Errors about input name the field, the "
    "position and the rule broken (`field`, `rule`, `errors`).",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "`about:blank` unless a type is named"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "field": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "rule": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

REQUEST_ID_HEADER_DOC = {
    "description": "The request's id: the caller's `X-Request-ID` when it is 8-64 letters, "
    "digits and `._:-` and not digits alone, else one the hub made. Every log line "
    "written while the request ran carries it.",
    "schema": {"type": "string", "maxLength": 64},
}

_STANDARD = {
    400: "The body cannot be parsed (not JSON, or not in the declared encoding)",
    401: "No credentials, or credentials that are malformed, unknown, expired or revoked",
    403: "The caller's role may not call this operation",
    404: "What the path names does not exist, or is not the caller's to see",
    408: "The body did not all arrive in time",
    413: "The body is larger than the hub's limit (`HUB_MAX_BODY_BYTES`)",
    422: "A parameter or the body is not valid: problem details name the field and rule",
}


def operation_id(route: APIRoute) -> str:
    """An operation's id: its endpoint function's name (`child_record`)."""
    return route.name


def _responses_for(operation: dict[str, Any], path: str) -> set[int]:
    wanted = set()
    if operation.get("security"):
        wanted |= {401, 403}
    if "requestBody" in operation:
        wanted |= {400, 408, 413, 422}
    if operation.get("parameters"):
        wanted.add(422)
    if "{" in path:
        wanted.add(404)
    return wanted


def _is_validation_error(content: dict[str, Any]) -> bool:
    schema = content.get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _complete_operation(operation: dict[str, Any], path: str) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in _responses_for(operation, path):
        responses.setdefault(str(status), {"description": _STANDARD[status]})
    for key, response in responses.items():
        code = int(key) if key.isdigit() else 0
        content = response.get("content") or {}
        if code >= 400 and (not content or _is_validation_error(content)):
            examples = content.get("application/json", {}).get("example")
            problem: dict[str, Any] = {"schema": PROBLEM_REF}
            if examples is not None and not _is_validation_error(content):
                problem["example"] = examples
            response["content"] = {PROBLEM_JSON: problem}
            if response.get("description") == "Validation Error":
                response["description"] = _STANDARD[422]
        elif PROBLEM_JSON in content:
            content[PROBLEM_JSON].setdefault("schema", PROBLEM_REF)
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = {"$ref": "#/components/headers/RequestId"}
        if code == 401:
            headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WwwAuthenticate"}


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document, completed (in place) with what the hub sends."""
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                _complete_operation(operation, path)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    doc["components"]["headers"] = {
        "RequestId": REQUEST_ID_HEADER_DOC,
        "WwwAuthenticate": {
            "description": "The Bearer challenge (RFC 6750)",
            "schema": {"type": "string"},
        },
    }
    return dict(sorted(doc.items()))


def _check_unique(app: FastAPI) -> None:
    import fastapi.routing

    seen: dict[str, str] = {}
    for route in fastapi.routing.iter_route_contexts(app.routes):
        if not getattr(route, "include_in_schema", False) or not hasattr(route, "endpoint"):
            continue
        name = getattr(route, "name", None)
        path = getattr(route, "path", "")
        if name in seen and seen[name] != path:
            raise RuntimeError(f"two operations are named {name}: {seen[name]} and {path}")
        seen[str(name)] = path


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document from `app.openapi()` (and so `/openapi.json`)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _check_unique(app)
            doc = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            app.openapi_schema = complete(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document() -> str:
    """The API's OpenAPI document as `contracts/openapi.json` holds it."""
    import tempfile
    from pathlib import Path

    from hub.api.app import create_app
    from hub.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp)), run_projector=False)
        return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m hub.api.openapi: rewrite the contract
    from hub.contracts import packaged

    target = packaged("openapi.json")
    target.write_text(document(), encoding="utf-8")
    print(target)  # noqa: T201 - a command-line entry point prints what it wrote
