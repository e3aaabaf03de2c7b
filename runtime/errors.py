"""The JSON error answer both apps give, `{"error": {"code", "message"}}`, and the two
framework refusals they answer alike: invalid fields (named, never echoed) and an
unexpected error (its type and where, never its text)."""

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from contracts.v1 import ErrorBody, ErrorResponse
from runtime import edge


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def invalid_fields(exc: RequestValidationError) -> str:
    """FastAPI's default body echoes the input; this names fields and error kinds only."""
    problems = sorted(
        {
            f"{'.'.join(str(p) for p in err.get('loc', ()))} ({err.get('type', 'invalid')})"
            for err in exc.errors()
        }
    )
    return "invalid fields: " + ", ".join(problems)


def internal_error(
    request: Request, exc: Exception, *, log: logging.Logger, answer: str
) -> JSONResponse:
    """A 500 whose message is `answer` and the request id, logged as the exception's type and
    where only: its text can carry SQL, parameters or data."""
    rid = edge.request_id(request.scope)
    log.error("unhandled error: %s (request %s)", edge.describe(exc), rid)
    return error_response(
        500, "internal_error", f"{answer} (request {rid})", headers={edge.REQUEST_ID_HEADER: rid}
    )
