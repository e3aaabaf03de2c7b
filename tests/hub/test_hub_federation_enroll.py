"""Enrollment tokens, enrollment with pinned keys, removal and key rotation at the hub."""

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from federation_support import enroll, enrollment, issue_token
from hub_support import Hub, SimNode
from sqlalchemy import select

from contracts import signing
from contracts.v1 import EnrollmentAccepted, KeyRotation, KeyRotationAccepted
from hub.db import init_db, make_engine
from hub.nodes.models import EnrollmentToken


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    return make_hub([])


@pytest.fixture
def node(hub: Hub) -> SimNode:
    return SimNode(node_id="np-pull", country="524", hub_key=hub.identity.public_jwk)


def token_rows(hub: Hub) -> list[EnrollmentToken]:
    engine = make_engine(hub.settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            return list(s.scalars(select(EnrollmentToken)))
    finally:
        engine.dispose()


def test_token_is_one_time_hashed_and_pins_both_keys(hub: Hub, node: SimNode) -> None:
    token = issue_token(hub, node_id=node.node_id, note="Nepal CSO")
    assert token.startswith(f"se1.{hub.identity.kid}.")
    # Only the hash is stored; the token itself is never listed again.
    (row,) = token_rows(hub)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    listed = hub.client.get("/v1/enrollment-tokens", headers=hub.headers("secretariat"))
    assert token not in listed.text
    assert listed.json()[0]["used_at"] is None

    response = hub.client.post("/v1/enroll", json=enrollment(hub, node, token))
    assert response.status_code == 201, response.text
    accepted = signing.verify_model(
        response.json()["jws"], signing.load_public_key(hub.identity.public_jwk), EnrollmentAccepted
    )
    assert accepted.hub_kid == hub.identity.kid
    assert accepted.kid == signing.key_id(node.key)
    assert accepted.mode == "pull"
    nodes = hub.client.get("/v1/nodes", headers=hub.headers("analyst")).json()
    assert [(n["node_id"], n["mode"], n["kid"], n["url"]) for n in nodes] == [
        (node.node_id, "pull", signing.key_id(node.key), "")
    ]

    again = hub.client.post("/v1/enroll", json=enrollment(hub, node, token))
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "enrollment_token_invalid"


def test_expired_unknown_and_other_node_tokens_are_refused(hub: Hub, node: SimNode) -> None:
    other = SimNode(node_id="ke-x", country="404", hub_key=hub.identity.public_jwk)
    bound = issue_token(hub, node_id=other.node_id)
    response = hub.client.post("/v1/enroll", json=enrollment(hub, node, bound))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "enrollment_invalid"

    unknown = f"se1.{hub.identity.kid}.{secrets.token_urlsafe(32)}"
    response = hub.client.post("/v1/enroll", json=enrollment(hub, node, unknown))
    assert response.json()["error"]["code"] == "enrollment_token_invalid"

    expiring = issue_token(hub, ttl_hours=0.0001)
    engine = make_engine(hub.settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            for row in s.scalars(select(EnrollmentToken)):
                row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            s.commit()
    finally:
        engine.dispose()
    response = hub.client.post("/v1/enroll", json=enrollment(hub, node, expiring))
    assert response.json()["error"]["code"] == "enrollment_token_invalid"
    assert hub.client.get("/v1/nodes", headers=hub.headers("admin")).json() == []


def test_enrollment_must_be_signed_by_the_key_it_carries(hub: Hub, node: SimNode) -> None:
    token = issue_token(hub)
    body = enrollment(hub, node, token, public_jwk=signing.public_jwk(signing.generate_key()))
    response = hub.client.post("/v1/enroll", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "enrollment_invalid"
    # The refusal did not use the token up.
    assert hub.client.post("/v1/enroll", json=enrollment(hub, node, token)).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"token": "x" * 20},
        {"token": "x" * 20, "jws": "not-a-jws-at-all", "extra": 1},
        {"token": "short", "jws": "a.b.c.d.e.f"},
        [],
    ],
)
def test_malformed_enrollment_is_refused(hub: Hub, body: object) -> None:
    response = hub.client.post("/v1/enroll", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_oversized_enrollment_is_refused_before_parsing(hub: Hub) -> None:
    response = hub.client.post(
        "/v1/enroll",
        content=b'{"token": "' + b"x" * (hub.settings.body_max_bytes + 1) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_push_enrollment_needs_a_url(hub: Hub, node: SimNode) -> None:
    token = issue_token(hub)
    response = hub.client.post("/v1/enroll", json=enrollment(hub, node, token, mode="push"))
    assert response.status_code == 201
    assert hub.client.get("/v1/nodes", headers=hub.headers("admin")).json()[0]["url"] == node.url
    other = SimNode(node_id="ke-y", country="404", hub_key=hub.identity.public_jwk)
    token = issue_token(hub)
    response = hub.client.post(
        "/v1/enroll", json=enrollment(hub, other, token, mode="push", url=None)
    )
    assert response.json()["error"]["code"] == "enrollment_invalid"


@pytest.mark.parametrize("who", ["analyst", "auditor", None])
def test_only_secretariat_or_admin_issue_tokens_and_remove_nodes(
    hub: Hub, node: SimNode, who: str | None
) -> None:
    headers = hub.headers(who) if who else {}
    response = hub.client.post("/v1/enrollment-tokens", json={}, headers=headers)
    assert response.status_code == (403 if who else 401)
    assert hub.client.get("/v1/enrollment-tokens", headers=headers).status_code in (401, 403)
    assert enroll(hub, node).status_code == 201
    response = hub.client.request("DELETE", f"/v1/nodes/{node.node_id}", headers=headers)
    assert response.status_code == (403 if who else 401)


def test_bad_token_requests_are_refused(hub: Hub) -> None:
    for body in ({"ttl_hours": -1}, {"node_id": "Bad Id!"}, {"surprise": True}):
        response = hub.client.post(
            "/v1/enrollment-tokens", json=body, headers=hub.headers("secretariat")
        )
        assert response.status_code == 422, body
    response = hub.client.request("DELETE", "/v1/nodes/no-such", headers=hub.headers("admin"))
    assert response.status_code == 404


def test_removed_node_is_refused_everywhere(hub: Hub, node: SimNode) -> None:
    assert enroll(hub, node).status_code == 201
    response = hub.client.request(
        "DELETE", f"/v1/nodes/{node.node_id}", headers=hub.headers("admin")
    )
    assert response.status_code == 200
    assert response.json()["status"] == "removed"
    # Cannot come back through enrollment or the TOFU registration either.
    assert enroll(hub, node).json()["error"]["code"] == "node_removed"
    response = hub.client.post("/v1/nodes", json=node.registration(), headers=hub.headers("admin"))
    assert response.json()["error"]["code"] == "node_removed"


def rotation(hub: Hub, node: SimNode, new_key: object, **changes: object) -> dict[str, str]:
    fields: dict[str, object] = {
        "hub_id": hub.identity.hub_id,
        "node_id": node.node_id,
        "new_public_jwk": signing.public_jwk(new_key),  # type: ignore[arg-type]
        "issued_at": datetime.now(UTC),
        "nonce": secrets.token_hex(16),
    }
    fields.update(changes)
    payload = KeyRotation.model_validate(fields)
    return {
        "by_current_key": signing.sign(payload, node.key),
        "by_new_key": signing.sign(payload, new_key),  # type: ignore[arg-type]
    }


def test_key_rotation_keeps_the_old_key_for_the_overlap(hub: Hub, node: SimNode) -> None:
    assert enroll(hub, node).status_code == 201
    old_kid = signing.key_id(node.key)
    new_key = signing.generate_key()
    body = rotation(hub, node, new_key)
    response = hub.client.post(f"/v1/nodes/{node.node_id}/keys", json=body)
    assert response.status_code == 200, response.text
    # The answer is signed by the hub key the node pinned: the node switches only on it.
    accepted = signing.verify_model(
        response.json()["jws"],
        signing.load_public_key(hub.identity.public_jwk),
        KeyRotationAccepted,
    )
    assert (accepted.node_id, accepted.kid) == (node.node_id, signing.key_id(new_key))
    assert accepted.previous_kid == old_kid
    read = next(n for n in hub.client.get("/v1/nodes", headers=hub.headers("admin")).json())
    assert (read["kid"], read["previous_kid"]) == (accepted.kid, old_kid)
    assert read["previous_valid_until"] is not None
    # The same rotation again is a replay.
    again = hub.client.post(f"/v1/nodes/{node.node_id}/keys", json=body)
    assert again.json()["error"]["code"] in ("replayed", "node_signature_invalid")


def test_rotation_needs_both_signatures(hub: Hub, node: SimNode) -> None:
    assert enroll(hub, node).status_code == 201
    new_key = signing.generate_key()
    body = rotation(hub, node, new_key)
    body["by_new_key"] = body["by_current_key"]
    response = hub.client.post(f"/v1/nodes/{node.node_id}/keys", json=body)
    assert response.status_code == 401
    stranger = SimNode(node_id="ke-z", country="404", hub_key=hub.identity.public_jwk)
    response = hub.client.post(
        f"/v1/nodes/{node.node_id}/keys", json=rotation(hub, stranger, new_key)
    )
    assert response.status_code == 401
    assert hub.client.get("/v1/nodes", headers=hub.headers("admin")).json()[0][
        "kid"
    ] == signing.key_id(node.key)
