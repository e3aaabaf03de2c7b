"""The one place where the hub maps errors to HTTP answers `{"error": {"code", "message"}}`."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.auth.refusals import record_refusal
from hub.exceptions import HubError
from hub.web.errors import error_page, is_web
from runtime import edge, errors

log = logging.getLogger("hub")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return errors.error_response(status, code, message, headers)


def install_error_handlers(app: FastAPI) -> None:
    async def hub_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HubError)
        if exc.status_code in (401, 403):
            # Every refusal is logged; those tied to an account also go to the audit chain.
            state = getattr(request.app.state, "hub", None)
            await run_in_threadpool(
                record_refusal,
                request=request,
                exc=exc,
                sessions=state.sessions if state is not None else None,
            )
        if is_web(request):
            return error_page(request, status=exc.status_code, code=exc.code, message=exc.message)
        return error_response(exc.status_code, exc.code, exc.message)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = errors.invalid_fields(exc)
        if is_web(request):
            return error_page(request, status=422, code="invalid_request", message=message)
        return error_response(422, "invalid_request", message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = edge.HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        if is_web(request):
            return error_page(
                request, status=exc.status_code, code=code, message=code.replace("_", " ")
            )
        return error_response(exc.status_code, code, code.replace("_", " "))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return errors.internal_error(request, exc, log=log, answer="the hub hit an internal error")

    app.add_exception_handler(HubError, hub_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
