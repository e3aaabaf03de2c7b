"""The one place where node errors become HTTP answers: status per code, ErrorResponse body."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from node import security
from node.exceptions import NodeError
from runtime import edge, errors

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    "unauthenticated": 401,
    "token_expired": 401,
    "login_failed": 401,
    "password_change_required": 403,
    "password_rejected": 422,
    "totp_invalid": 422,
    "steward_exists": 409,
    "steward_unknown": 404,
    "unsigned": 401,
    "signature_invalid": 401,
    "request_expired": 401,
    "invalid_request": 422,
    "wrong_node": 403,
    "secure_not_allowed": 403,
    "secure_session_unknown": 409,
    "roster_invalid": 422,
    "invalid_spec": 422,
    "wrong_route": 403,
    "rho_mismatch": 422,
    "query_mode_conflict": 409,
    "release_failed": 500,
    "rho_below_floor": 403,
    "noise_out_of_range": 422,
    "agreement_unknown": 403,
    "agreement_suspended": 403,
    "agreement_revoked": 403,
    "agreement_expired": 403,
    "dataset_not_in_agreement": 403,
    "measure_not_allowed": 403,
    "column_not_allowed": 403,
    "dim_not_allowed": 403,
    "too_many_dims": 403,
    "grid_not_allowed": 403,
    "cost_over_cap": 403,
    "agreement_not_yet_valid": 403,
    "agreement_superseded": 403,
    "analyst_org_not_permitted": 403,
    "dissemination_not_allowed": 403,
    "agreement_invalid": 422,
    "term_not_in_contract": 422,
    "hub_unreachable": 502,
    "budget_exhausted": 403,
    "query_id_conflict": 409,
    "unknown_dataset": 422,
    "measure_not_supported": 422,
    "unknown_column": 422,
    "unknown_level": 422,
    "column_not_queryable": 422,
    "dim_not_categorical": 422,
    "cost_check_failed": 422,
    "column_not_numeric": 422,
    "bounds_missing": 422,
    "no_weight_column": 422,
    "release_too_large": 422,
    "dataset_invalid": 422,
    "dataset_exists": 409,
    "contract_invalid": 422,
    "contract_conflict": 409,
    "file_unreadable": 422,
    "file_too_large": 413,
    "codebook_invalid": 422,
    "import_mapping_invalid": 422,
    "upload_expired": 410,
    "module_not_held": 422,
    "module_invalid": 422,
    "module_not_in_agreement": 403,
    "mapping_missing": 422,
    "mapping_invalid": 422,
    "variable_not_collected": 422,
    "login_required": 401,
    "csrf_failed": 403,
    "form_invalid": 422,
}
# Routes whose body must be a signed message: anything else there is "unsigned".
SIGNED_ROUTES = ("/v1/queries", "/v1/secure/offers", "/v1/secure/contributions")


error_response = errors.error_response


async def _node_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NodeError)
    return error_response(STATUS_BY_CODE.get(exc.code, 400), exc.code, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if request.url.path in SIGNED_ROUTES:
        security.unverified(route=request.url.path, code="unsigned")
        return error_response(401, "unsigned", "the body must be a signed message {jws}")
    return error_response(422, "invalid_request", errors.invalid_fields(exc))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = edge.HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, code.replace("_", " "))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return errors.internal_error(request, exc, log=log, answer="the node could not answer")


def install(app: FastAPI) -> None:
    app.add_exception_handler(NodeError, _node_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
