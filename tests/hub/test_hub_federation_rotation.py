"""Node key rotation end to end: `node.sync.rotate_key` on real node homes (push and pull)
against the real hub app. The hub verifies releases from the new key at once, still takes
the old key's releases during the overlap, refuses them after it, and refuses a removed node.
"""

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from federation_support import issue_token
from hub_support import DATASET, Hub, make_terms
from sqlalchemy import select, update
from test_hub_with_real_nodes import contract, frame
from typer.testing import CliRunner

from contracts import signing
from contracts.v1 import KeyRotation, NodePoll, QueryRequest, Signed, SignedAgreement
from hub.db import init_db, make_engine
from hub.federation.models import Node
from hub.queries.models import QueryNodeRow
from node import home as node_home
from node.agreements import service as node_agreements
from node.app import create_app as create_node_app
from node.datasets import service as node_datasets
from node.db import dispose_engines
from node.exceptions import NodeError
from node.metrics import observed_handle_query
from node.settings import NodeSettings
from node.sync import service as sync
from sauti.cli import app as sauti_app

HUB_URL = "http://hub.test"
PUSH_URL = "http://np-push.nodes.test"


class ToHub(httpx.BaseTransport):
    """The node's own HTTP calls (enroll, rotate, poll, answers) into the in-process hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.lose_next_answer = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.hub.client.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.read(),
            headers={"content-type": "application/json"},
        )
        if self.lose_next_answer:
            # The hub did the work; its answer never reaches the node.
            self.lose_next_answer = False
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(response.status_code, content=response.content)


@dataclass
class Federation:
    hub: Hub
    homes: dict[str, Path]
    to_hub: ToHub
    client: httpx.Client

    def settings(self, node_id: str) -> NodeSettings:
        return NodeSettings(home=self.homes[node_id])

    def submit(self) -> str:
        response = self.hub.client.post(
            "/v1/queries",
            json={
                "agreement_id": "lnob-2026",
                "dataset": DATASET,
                "measure": "count",
                "group_by": ["sex"],
                "rho": 0.1,
            },
            params={"wait": 0, "ttl_seconds": 600},
            headers=self.hub.headers("analyst"),
        )
        assert response.status_code in (201, 202), response.text
        query_id: str = response.json()["query_id"]
        return query_id

    def outcome(self, query_id: str, node_id: str, *, wait: float = 0) -> tuple[str, str | None]:
        """The node's outcome; with `wait`, once it is no longer pending (at most that long)."""
        for _ in range(max(1, int(wait / 0.2))):
            response = self.hub.client.get(
                f"/v1/queries/{query_id}",
                params={"wait": 0.2 if wait else 0},
                headers=self.hub.headers("analyst"),
            )
            node = next(n for n in response.json()["nodes"] if n["node_id"] == node_id)
            if node["outcome"] != "pending":
                break
        return node["outcome"], node["error_code"]

    def hub_node(self, node_id: str) -> dict[str, Any]:
        response = self.hub.client.get("/v1/nodes", headers=self.hub.headers("admin"))
        node: dict[str, Any] = next(n for n in response.json() if n["node_id"] == node_id)
        return node

    def collect(self, node_id: str) -> list[Signed]:
        """Poll without answering (what a pull node has in hand when it rotates)."""
        identity = node_home.load_identity(self.homes[node_id])
        key = node_home.load_key(self.homes[node_id])
        poll = NodePoll(
            hub_id=identity.hub_id or "",
            node_id=node_id,
            issued_at=datetime.now(UTC),
            nonce=secrets.token_hex(16),
            wait_seconds=0,
        )
        response = self.client.post(
            f"{HUB_URL}/v1/federation/poll", json={"jws": signing.sign(poll, key)}
        )
        assert response.status_code == 200, response.text
        return [Signed(jws=t["jws"]) for t in response.json()["tasks"]]


@pytest.fixture
def federation(tmp_path: Path, hub_home: Any, make_hub: Callable[..., Hub]) -> Iterator[Federation]:
    homes = {"np-push": tmp_path / "np-push", "ke-pull": tmp_path / "ke-pull"}
    countries = {"np-push": "524", "ke-pull": "404"}
    for seed, (node_id, home) in enumerate(homes.items()):
        node_home.init_home(
            home, name=f"CSO {node_id}", country=countries[node_id], node_id=node_id
        )
        node_datasets.import_frame(home=home, contract=contract(), frame=frame(200, seed))
    push_app = httpx.ASGITransport(app=create_node_app(NodeSettings(home=homes["np-push"])))
    hub = make_hub([], extra={"np-push.nodes.test": push_app})
    to_hub = ToHub(hub)
    client = httpx.Client(transport=to_hub)
    for node_id, home in homes.items():
        mode = "push" if node_id == "np-push" else "pull"
        token = issue_token(hub, node_id=node_id)
        url = PUSH_URL if mode == "push" else None
        sync.enroll(home=home, hub_url=HUB_URL, token=token, mode=mode, url=url, client=client)
    terms = make_terms(
        list(countries.items()),
        columns=("violence_12m",),
        dims=("sex", "group"),
        min_cell_size=0,
        rho_budget=10.0,
    )
    created = hub.client.post(
        "/v1/agreements", json=terms.model_dump(mode="json"), headers=hub.headers("secretariat")
    )
    assert created.status_code == 201, created.text
    signed = SignedAgreement.model_validate(created.json()["agreement"])
    for home in homes.values():
        signature = node_agreements.sign(home=home, agreement=signed)
        response = hub.client.post(
            f"/v1/agreements/{terms.agreement_id}/signatures",
            json=signature.model_dump(mode="json"),
            headers=hub.headers("secretariat"),
        )
        assert response.status_code == 201, response.text
    yield Federation(hub=hub, homes=homes, to_hub=to_hub, client=client)
    client.close()
    dispose_engines()


def end_overlap(hub: Hub, node_id: str) -> None:
    """Time passes: the previous key's overlap is over."""
    engine = make_engine(hub.settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            s.execute(
                update(Node)
                .where(Node.node_id == node_id)
                .values(previous_valid_until=datetime.now(UTC) - timedelta(seconds=1))
            )
            s.commit()
    finally:
        engine.dispose()


def test_push_node_rotates_and_its_next_release_verifies_with_the_new_key(
    federation: Federation,
) -> None:
    home = federation.homes["np-push"]
    before = node_home.load_identity(home)
    first = federation.submit()
    assert federation.outcome(first, "np-push", wait=20) == ("ok", None)

    rotated = sync.rotate_key(home=home, client=federation.client)
    after = node_home.load_identity(home)
    assert rotated.old_kid == before.kid
    assert rotated.new_kid == after.kid != before.kid
    assert signing.key_id(node_home.load_key(home)) == after.kid
    # Only the old public half is kept, with the end of the hub's overlap.
    (previous,) = after.previous_keys
    assert previous.kid == before.kid
    assert previous.valid_until is not None
    assert "d" not in previous.public_jwk
    assert not (home / node_home.NEXT_KEY_FILE).exists()
    pinned = federation.hub_node("np-push")
    assert (pinned["kid"], pinned["previous_kid"]) == (after.kid, before.kid)

    # The running node signs its next release with the new key; the hub verifies it.
    second = federation.submit()
    assert federation.outcome(second, "np-push", wait=20) == ("ok", None)
    second_jws = _release_jws(federation, second, "np-push")
    assert signing.unverified_header(second_jws)["kid"] == after.kid
    # The overlap's end changes nothing for a node that switched.
    end_overlap(federation.hub, "np-push")
    third = federation.submit()
    assert federation.outcome(third, "np-push", wait=20) == ("ok", None)


def test_pull_node_rotates_old_key_counts_only_during_the_overlap(
    federation: Federation,
) -> None:
    home = federation.homes["ke-pull"]
    old_kid = node_home.load_identity(home).kid
    settings = federation.settings("ke-pull")
    queries = [federation.submit(), federation.submit()]
    tasks = federation.collect("ke-pull")
    assert len(tasks) == 2
    # Answered (charged, stored, signed with the old key) but not yet delivered.
    answers = [observed_handle_query(settings=settings, signed=t) for t in tasks]
    by_query = {
        str(QueryRequest.model_validate_json(signing.unverified_payload(t.jws)).query_id): a
        for t, a in zip(tasks, answers, strict=True)
    }

    rotated = sync.rotate_key(home=home, client=federation.client)
    assert rotated.old_kid == old_kid

    # During the overlap the hub still takes a release the old key signed.
    first = federation.client.post(
        f"{HUB_URL}/v1/federation/releases", json=by_query[queries[0]].model_dump()
    )
    assert first.status_code == 202, first.text
    assert federation.outcome(queries[0], "ke-pull") == ("ok", None)
    # After it, the old key is refused, and nothing is stored.
    end_overlap(federation.hub, "ke-pull")
    late = federation.client.post(
        f"{HUB_URL}/v1/federation/releases", json=by_query[queries[1]].model_dump()
    )
    assert (late.status_code, late.json()["error"]["code"]) == (401, "node_signature_invalid")
    assert federation.outcome(queries[1], "ke-pull") == ("pending", None)

    # The node polls and answers with its new key.
    third = federation.submit()
    stats = sync.poll_once(settings=settings, client=federation.client, wait_seconds=0)
    assert stats.answered >= 1
    assert federation.outcome(third, "ke-pull") == ("ok", None)
    assert signing.unverified_header(_release_jws(federation, third, "ke-pull"))["kid"] == (
        rotated.new_kid
    )


def test_interrupted_rotation_resumes_with_the_same_key(federation: Federation) -> None:
    home = federation.homes["ke-pull"]
    old_kid = node_home.load_identity(home).kid
    federation.to_hub.lose_next_answer = True
    with pytest.raises(NodeError) as lost:
        sync.rotate_key(home=home, client=federation.client)
    assert lost.value.code == "hub_unreachable"
    # The hub pinned the new key; the node still signs with the old one (in overlap).
    pending = signing.load_private_key(home / node_home.NEXT_KEY_FILE)
    assert federation.hub_node("ke-pull")["kid"] == signing.key_id(pending)
    assert node_home.load_identity(home).kid == old_kid
    rotated = sync.rotate_key(home=home, client=federation.client)
    assert rotated.new_kid == signing.key_id(pending)
    assert node_home.load_identity(home).kid == rotated.new_kid
    assert (
        sync.poll_once(
            settings=federation.settings("ke-pull"), client=federation.client, wait_seconds=0
        ).received
        == 0
    )


def test_retired_key_cannot_rotate_and_removed_node_is_refused(federation: Federation) -> None:
    home = federation.homes["np-push"]
    old_key = node_home.load_key(home)
    sync.rotate_key(home=home, client=federation.client)
    # A stolen retired key, still in its overlap, must not choose the node's next key.
    identity = node_home.load_identity(home)
    intruder = signing.generate_key()
    rotation = KeyRotation(
        hub_id=identity.hub_id or "",
        node_id=identity.node_id,
        new_public_jwk=signing.public_jwk(intruder),
        issued_at=datetime.now(UTC),
        nonce="x" * 32,
    )
    response = federation.client.post(
        f"{HUB_URL}/v1/nodes/np-push/keys",
        json={
            "by_current_key": signing.sign(rotation, old_key),
            "by_new_key": signing.sign(rotation, intruder),
        },
    )
    assert (response.status_code, response.json()["error"]["code"]) == (401, "key_retired")
    assert federation.hub_node("np-push")["kid"] == identity.kid

    removed = federation.hub.client.request(
        "DELETE", "/v1/nodes/np-push", headers=federation.hub.headers("secretariat")
    )
    assert removed.status_code == 200
    with pytest.raises(NodeError) as refused:
        sync.rotate_key(home=home, client=federation.client)
    assert refused.value.code == "key_rotation_failed"
    assert "node_removed" in refused.value.message
    # Nothing changed at the node: same key, no pending key left behind.
    assert node_home.load_identity(home).kid == identity.kid
    assert not (home / node_home.NEXT_KEY_FILE).exists()


def test_rotate_key_command_refuses_a_node_that_never_enrolled(tmp_path: Path) -> None:
    home = tmp_path / "lonely"
    node_home.init_home(home, name="CSO lonely", country="404", node_id="lonely")
    result = CliRunner().invoke(sauti_app, ["node", "rotate-key", "--home", str(home)])
    assert result.exit_code != 0
    assert "not_enrolled" in result.output
    assert not (home / node_home.NEXT_KEY_FILE).exists()
    assert json.loads((home / "node.json").read_text())["previous_keys"] == []


def _release_jws(federation: Federation, query_id: str, node_id: str) -> str:
    engine = make_engine(federation.hub.settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            row = s.scalars(
                select(QueryNodeRow).where(
                    QueryNodeRow.query_id == query_id, QueryNodeRow.node_id == node_id
                )
            ).one()
            assert row.release_jws is not None
            return row.release_jws
    finally:
        engine.dispose()
