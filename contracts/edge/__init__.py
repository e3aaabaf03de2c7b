"""Plumbing both apps run at their HTTP edge: text rules, request ids, headers, logs, OpenAPI.

This is runtime plumbing, not wire protocol. It sits in `contracts` only because that is the
one package the hub and the node both import today; it moves to the planned `runtime/`
package as it is. It imports no web library (pure ASGI, logging and dicts), so `contracts`
stays free of them; each app adapts it in a few lines (`hub/edge.py`, `node/api/edge.py`).
"""

from contracts.edge.asgi import (
    HTTP_CODES,
    REQUEST_ID_HEADER,
    EdgeMiddleware,
    current_request_id,
    error_json,
    request_id,
)
from contracts.edge.csp import DEFAULT_HTML_POLICY, document_policy
from contracts.edge.logs import DataFreeFormatter, data_free_logging, describe, log_config
from contracts.edge.openapi import document_errors, file_answer, with_errors
from contracts.edge.text import (
    Location,
    forbidden_in,
    forbidden_in_form,
    forbidden_in_request,
    validation_errors,
)

__all__ = [
    "DEFAULT_HTML_POLICY",
    "HTTP_CODES",
    "REQUEST_ID_HEADER",
    "DataFreeFormatter",
    "EdgeMiddleware",
    "Location",
    "current_request_id",
    "data_free_logging",
    "describe",
    "document_errors",
    "document_policy",
    "error_json",
    "file_answer",
    "forbidden_in",
    "forbidden_in_form",
    "forbidden_in_request",
    "log_config",
    "request_id",
    "validation_errors",
    "with_errors",
]
