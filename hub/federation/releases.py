"""Accept a node's release only if a pinned key signed it and it answers what was sent."""

from typing import Any

from pydantic import ValidationError

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import QueryRequest, Release
from hub.federation.exceptions import ReleaseRejected


def verify_release(
    *,
    token: str,
    request: QueryRequest,
    keys: dict[str, dict[str, Any]],
    contract_version: int | None,
) -> Release:
    """`keys` maps key ids to the node's pinned public JWKs (current and, in overlap, previous)."""
    try:
        kid = signing.unverified_header(token).get("kid")
        jwk = keys.get(kid) if isinstance(kid, str) else None
        if jwk is None:
            raise ReleaseRejected("the node's release is not signed with its pinned key")
        release = signing.verify_model(token, signing.load_public_key(jwk), Release)
    except (ValidationError, ContractError) as exc:
        raise ReleaseRejected("the node's release does not verify with its pinned key") from exc
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
        raise ReleaseRejected("the node's release does not answer the request that was sent")
    return release


def sent_request(request_jws: str) -> QueryRequest:
    """The request the hub itself signed and stored; read back without re-verifying."""
    return QueryRequest.model_validate_json(signing.unverified_payload(request_jws))
