"""Send signed requests to nodes concurrently, retry what is safe to retry, verify releases."""

import asyncio
import random
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import ErrorResponse, Release, Signed
from contracts.v1.result import NodeOutcome
from hub.privacy.planning import Plan, PlannedCall

MAX_NODE_MESSAGE = 300


@dataclass(frozen=True)
class CallOutcome:
    node_id: str
    country: str
    outcome: NodeOutcome
    error_code: str | None = None
    message: str | None = None
    release: Release | None = None
    release_jws: str | None = None


class _Retryable(Exception):
    """A 5xx answer: the node may succeed on the same (idempotent) request."""


async def fan_out(
    *,
    client: httpx.AsyncClient,
    plan: Plan,
    timeout_seconds: float,
    retries: int,
    backoff_seconds: float,
    contract_versions: dict[str, int],
) -> list[CallOutcome]:
    """One outcome per planned call, in plan order; never raises for a node's failure."""
    return list(
        await asyncio.gather(
            *(
                _call(
                    client=client,
                    call=call,
                    timeout_seconds=timeout_seconds,
                    retries=retries,
                    backoff_seconds=backoff_seconds,
                    contract_version=contract_versions.get(plan.spec.dataset),
                )
                for call in plan.calls
            )
        )
    )


async def _call(
    *,
    client: httpx.AsyncClient,
    call: PlannedCall,
    timeout_seconds: float,
    retries: int,
    backoff_seconds: float,
    contract_version: int | None,
) -> CallOutcome:
    target = call.target

    def outcome(kind: NodeOutcome, code: str, message: str) -> CallOutcome:
        return CallOutcome(
            node_id=target.node_id,
            country=target.country,
            outcome=kind,
            error_code=code,
            message=message,
        )

    url = f"{target.url}/v1/queries"
    body = Signed(jws=call.jws).model_dump(mode="json")
    last: CallOutcome = outcome("failed", "node_unreachable", "the node could not be reached")
    for attempt in range(retries + 1):
        if attempt:
            # Exponential backoff with full jitter; resending the same signed request is
            # safe because the node answers a known query id from its stored release.
            await asyncio.sleep(random.uniform(0, backoff_seconds * 2 ** (attempt - 1)))  # noqa: S311
        try:
            response = await client.post(url, json=body, timeout=timeout_seconds)
            if response.status_code >= 500:
                raise _Retryable
        except httpx.TimeoutException:
            last = outcome("timeout", "node_timeout", "the node did not answer in time")
            continue
        except httpx.TransportError:
            last = outcome("failed", "node_unreachable", "the node could not be reached")
            continue
        except _Retryable:
            last = outcome("failed", "node_error", "the node answered with a server error")
            continue
        if response.status_code >= 400:
            return _refused(call, response)
        return _verified(call, response, contract_version)
    return last


def _refused(call: PlannedCall, response: httpx.Response) -> CallOutcome:
    try:
        error = ErrorResponse.model_validate_json(response.content).error
        code, message = error.code[:100], error.message[:MAX_NODE_MESSAGE]
    except ValidationError:
        code, message = f"http_{response.status_code}", "the node refused the request"
    return CallOutcome(
        node_id=call.target.node_id,
        country=call.target.country,
        outcome="refused",
        error_code=code,
        message=message,
    )


def _verified(
    call: PlannedCall, response: httpx.Response, contract_version: int | None
) -> CallOutcome:
    """Accept only a release signed by the pinned key that answers exactly what was sent."""
    request = call.request
    try:
        token = Signed.model_validate_json(response.content).jws
        key = signing.load_public_key(call.target.public_jwk)
        release = signing.verify_model(token, key, Release)
    except (ValidationError, ContractError):
        return _invalid(call, "the node's release does not verify with its pinned key")
    matches = (
        release.query_id == request.query_id
        and release.node_id == request.node_id
        and release.agreement_id == request.agreement_id
        and release.agreement_version == request.agreement_version
        and release.request_digest == signing.digest(request)
        and release.dataset == request.spec.dataset
        and release.measure == request.spec.measure
        and release.group_by == request.spec.group_by
        and abs(release.rho - request.rho) <= 1e-12
        and (contract_version is None or release.contract_version == contract_version)
    )
    if not matches:
        return _invalid(call, "the node's release does not answer the request that was sent")
    return CallOutcome(
        node_id=call.target.node_id,
        country=call.target.country,
        outcome="ok",
        release=release,
        release_jws=token,
    )


def _invalid(call: PlannedCall, message: str) -> CallOutcome:
    return CallOutcome(
        node_id=call.target.node_id,
        country=call.target.country,
        outcome="failed",
        error_code="release_invalid",
        message=message,
    )
