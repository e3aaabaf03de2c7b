"""The steward API: bearer tokens stored hashed, revocable, refused without a leak."""

from sqlalchemy import text

from node.auth import service as auth
from node.db import engine_for
from tests.node.conftest import Node


def _budget(node: Node, token: str | None) -> tuple[int, dict]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = node.client.request("GET", "/v1/steward/budget", headers=headers)
    return response.status_code, response.json()


def test_steward_token_reads_the_budget(node: Node) -> None:
    token = auth.create_token(database_url=node.settings.db_url, name="Sita, data lead")
    status, body = _budget(node, token)
    assert status == 200
    assert body[0]["agreement_id"] == node.terms.agreement_id


def test_missing_unknown_and_revoked_tokens_are_refused(node: Node) -> None:
    for token in (None, "sauti_node_not-a-real-token"):
        status, body = _budget(node, token)
        assert status == 401
        assert body["error"]["code"] == "unauthenticated"
    token = auth.create_token(database_url=node.settings.db_url, name="old laptop")
    steward = auth.authenticate(database_url=node.settings.db_url, token=token)
    auth.revoke_token(database_url=node.settings.db_url, token_id=steward.token_id)
    status, body = _budget(node, token)
    assert status == 401
    assert body["error"]["code"] == "unauthenticated"


def test_only_the_hash_is_stored(node: Node) -> None:
    token = auth.create_token(database_url=node.settings.db_url, name="script")
    with engine_for(node.settings.db_url).connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM steward_tokens")).scalars().all()
    assert token not in stored
    assert all(len(h) == 64 for h in stored)
