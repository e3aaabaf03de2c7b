"""Plumbing both apps run at their HTTP edge: text rules, request ids, headers, logs, OpenAPI.

Runtime plumbing, not wire protocol: pure ASGI, logging and dicts, so it depends on no
web framework; each app installs it in a few lines of its `create_app`.
"""

from runtime.edge.asgi import (
    HTTP_CODES,
    REQUEST_ID_HEADER,
    EdgeMiddleware,
    current_request_id,
    error_json,
    request_id,
)
from runtime.edge.csp import DEFAULT_HTML_POLICY, document_policy
from runtime.edge.logs import DataFreeFormatter, data_free_logging, describe, log_config
from runtime.edge.openapi import document_errors, file_answer, with_errors
from runtime.edge.text import (
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
