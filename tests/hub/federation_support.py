"""Helpers for federation tests: enroll simulated nodes through the API, sign node messages."""

import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
from hub_support import Hub, SimNode
from joserfc.jwk import OKPKey

from contracts import signing
from contracts.v1 import EnrollmentRequest, NodePoll, QueryRequest, TaskRefusal


def issue_token(hub: Hub, **body: Any) -> str:
    response = hub.client.post(
        "/v1/enrollment-tokens", json=body, headers=hub.headers("secretariat")
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def enrollment(
    hub: Hub, node: SimNode, token: str, *, mode: str = "pull", **changes: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "hub_kid": token.split(".")[1],
        "node_id": node.node_id,
        "name": f"CSO {node.node_id}",
        "country": node.country,
        "mode": mode,
        "url": node.url if mode == "push" else None,
        "public_jwk": signing.public_jwk(node.key),
        "issued_at": datetime.now(UTC),
        "nonce": secrets.token_hex(16),
    }
    fields.update(changes)
    request = EnrollmentRequest(**fields)
    return {"token": token, "jws": signing.sign(request, node.key)}


def enroll(hub: Hub, node: SimNode, *, mode: str = "pull") -> httpx.Response:
    token = issue_token(hub, node_id=node.node_id)
    return hub.client.post("/v1/enroll", json=enrollment(hub, node, token, mode=mode))


def poll_body(
    hub: Hub, node: SimNode, *, wait: float = 0, key: OKPKey | None = None, **changes: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "hub_id": hub.identity.hub_id,
        "node_id": node.node_id,
        "issued_at": datetime.now(UTC),
        "nonce": secrets.token_hex(16),
        "wait_seconds": wait,
    }
    fields.update(changes)
    return {"jws": signing.sign(NodePoll(**fields), key or node.key)}


def poll(hub: Hub, node: SimNode, *, wait: float = 0) -> list[str]:
    response = hub.client.post("/v1/federation/poll", json=poll_body(hub, node, wait=wait))
    assert response.status_code == 200, response.text
    return [t["jws"] for t in response.json()["tasks"]]


def release_for(node: SimNode, task: str, action: str | None = None) -> str:
    """What the simulated node would answer to `task` (its `script` may spoil it)."""
    if action is not None:
        node.script.insert(0, action)
    response = node.handle(httpx.Request("POST", node.url, json={"jws": task}))
    jws: str = response.json()["jws"]
    return jws


def refusal_for(node: SimNode, task: str, code: str = "budget_exhausted") -> str:
    request = QueryRequest.model_validate_json(signing.unverified_payload(task))
    refusal = TaskRefusal(
        query_id=request.query_id,
        node_id=node.node_id,
        request_digest=signing.digest(request),
        code=code,
        message="the agreement's budget is spent",
        refused_at=datetime.now(UTC),
    )
    return signing.sign(refusal, node.key)
