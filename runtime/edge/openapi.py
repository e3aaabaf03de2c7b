"""Error answers in an app's OpenAPI document: every refusal is `ErrorResponse`, documented.

FastAPI documents only its own 422 body (which neither app sends) and nothing else that can
go wrong. Every operation here lists what both apps really answer: 401/403 where it needs a
credential, 404 where the path names something, 413 where it takes a body, 422 where it
takes any input, any other 4XX and 500, each with the `ErrorResponse` schema. An operation
whose success is a file (CSV, XLSX, SDMX-CSV, PDF, HTML) declares that type itself and loses
the JSON FastAPI assumed for it.
"""

from collections.abc import Callable
from typing import Any

_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_METHODS = ("get", "put", "post", "delete", "patch")
_DESCRIPTIONS = {
    "401": "No credential, or one that is unknown, expired or revoked",
    "403": "Not allowed for this credential",
    "404": "Not found",
    "413": "The body is larger than this server accepts",
    "422": "Invalid input (the message names the fields, never their values)",
    "4XX": "Refused (the code says why)",
    "500": "Internal error (the message names the request id, X-Request-ID)",
}


def _error(status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


def file_answer(*media_types: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for a success that is a file of one of `media_types`."""
    return {
        status: {
            "description": "The file",
            "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in media_types},
        }
    }


def with_errors(
    openapi: Callable[[], dict[str, Any]], *, error_schema: dict[str, Any]
) -> Callable[[], dict[str, Any]]:
    """Wrap an app's `openapi()` (which caches its document) to add the error answers once."""
    documented: list[int] = []

    def build() -> dict[str, Any]:
        schema = openapi()
        if id(schema) not in documented:
            document_errors(schema, error_schema=error_schema)
            documented.append(id(schema))
        return schema

    return build


def document_errors(schema: dict[str, Any], *, error_schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers to every operation of `schema` (in place; also returned).

    `error_schema` is `ErrorResponse.model_json_schema()`, with its `$defs` (ErrorBody).
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    defs = dict(error_schema.get("$defs", {}))
    own = {k: v for k, v in error_schema.items() if k != "$defs"}
    components["ErrorResponse"] = _rebase(own)
    for name, sub in defs.items():
        components.setdefault(name, _rebase(sub))
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is not None:
                _document(operation, path_has_params="{" in path)
    return schema


def _document(operation: dict[str, Any], *, path_has_params: bool) -> None:
    responses = operation.setdefault("responses", {})
    statuses = ["4XX", "500"]
    if operation.get("security"):
        statuses += ["401", "403"]
    if path_has_params:
        statuses.append("404")
    if "requestBody" in operation:
        statuses.append("413")
    if "requestBody" in operation or operation.get("parameters"):
        statuses.append("422")
    for status in statuses:
        responses[status] = _error(status)
    for answer in responses.values():
        content = answer.get("content", {})
        files = [m for m in content if not m.startswith("application/json")]
        # FastAPI adds JSON to a route returning a plain Response; a file route says its types.
        if files and content.get("application/json", {}).get("schema") in ({}, None):
            content.pop("application/json", None)


def _rebase(value: Any) -> Any:
    """Pydantic's `#/$defs/X` references point into the document's components instead."""
    if isinstance(value, dict):
        return {
            k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else _rebase(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rebase(v) for v in value]
    return value
