"""Node key rotation end to end: `node.sync.rotate_key` on real node homes (push and pull)
against the real hub app. The hub verifies releases from the new key at once, still takes
the old key's releases during the overlap, refuses them after it, and refuses a removed node.
"""

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
import pytest
from federation_support import issue_token
from hub_support import DATASET, AppClient, Hub, RoutingTransport, make_terms
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from test_hub_with_real_nodes import contract, frame
from typer.testing import CliRunner

from contracts import signing
from contracts.v1 import (
    HubKeyAnnouncement,
    HubKeyRotation,
    KeyRotation,
    KeyRotationAccepted,
    NodePoll,
    QueryRequest,
    Release,
    Signed,
    SignedAgreement,
)
from contracts.v1.audit import AuditCheckpoint
from contracts.v1.federation import HUB_KEY_ROTATION_HEADER
from hub import home as hub_home_files
from hub.app import create_app as create_hub_app
from hub.audit.reconcile import parse_export, reconcile, verify_export
from hub.db import init_db, make_engine
from hub.nodes import service as hub_federation
from hub.nodes.models import Node
from hub.queries.models import QueryNodeRow
from node import home as node_home
from node.agreements import service as node_agreements
from node.app import create_app as create_node_app
from node.audit import service as node_audit
from node.datasets import service as node_datasets
from node.db import dispose_engines
from node.exceptions import NodeError
from node.queries.service import handle_query
from node.settings import NodeSettings
from node.sync import service as sync
from runtime import keys
from sauti.cli import app as sauti_app

HUB_URL = "http://hub.test"
PUSH_URL = "http://np-push.nodes.test"


class ToHub(httpx.BaseTransport):
    """The node's own HTTP calls (enroll, rotate, poll, answers) into the in-process hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.lose_next_answer = False
        # Replaces the hub's next answer (a meddler on a connection without TLS).
        self.forge_next_answer: bytes | None = None

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
        if self.forge_next_answer is not None:
            forged, self.forge_next_answer = self.forge_next_answer, None
            return httpx.Response(200, content=forged)
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() == HUB_KEY_ROTATION_HEADER.lower()
        }
        return httpx.Response(response.status_code, content=response.content, headers=headers)


@dataclass
class Federation:
    hub: Hub
    homes: dict[str, Path]
    to_hub: ToHub
    client: httpx.Client
    agreement: SignedAgreement
    push_app: httpx.ASGITransport

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
        mode: Literal["push", "pull"] = "push" if node_id == "np-push" else "pull"
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
    yield Federation(
        hub=hub, homes=homes, to_hub=to_hub, client=client, agreement=signed, push_app=push_app
    )
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
    answers = [handle_query(settings=settings, signed=t) for t in tasks]
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
    assert (late.status_code, late.json()["error"]["code"]) == (401, "key_retired")
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
    pending = keys.load_private_key(home / node_home.NEXT_KEY_FILE)
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
    # Nothing changed at the node: same key. The refusal is unsigned, so the new key stays
    # pending (a forged refusal must not make the node drop a key the hub may have pinned)
    # until the steward discards it; a repeat is refused again and changes nothing.
    assert node_home.load_identity(home).kid == identity.kid
    pending = (home / node_home.NEXT_KEY_FILE).read_text()
    with pytest.raises(NodeError):
        sync.rotate_key(home=home, client=federation.client)
    assert (home / node_home.NEXT_KEY_FILE).read_text() == pending
    with pytest.raises(NodeError):
        sync.rotate_key(home=home, client=federation.client, discard_pending=True)
    assert (home / node_home.NEXT_KEY_FILE).read_text() != pending
    assert node_home.load_identity(home).kid == identity.kid


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


def test_two_rotations_keep_every_key_for_what_it_signed_while_current(
    federation: Federation,
) -> None:
    home = federation.homes["np-push"]
    settings = federation.settings("np-push")
    key1 = node_home.load_key(home)
    kid1 = signing.key_id(key1)
    first = federation.submit()
    assert federation.outcome(first, "np-push", wait=20) == ("ok", None)
    release1 = _release_jws(federation, first, "np-push")
    assert signing.unverified_header(release1)["kid"] == kid1
    node_audit.make_checkpoint(home=home, settings=settings)
    assert node_audit.publish_pending(home=home, settings=settings, transport=federation.to_hub)

    second = sync.rotate_key(home=home, client=federation.client)
    end_overlap(federation.hub, "np-push")
    third = sync.rotate_key(home=home, client=federation.client)
    end_overlap(federation.hub, "np-push")
    assert len({kid1, second.new_kid, third.new_kid}) == 3

    # The hub keeps the whole history, each key with the interval it was current.
    keys = federation.hub.client.get(
        "/v1/nodes/np-push/keys", headers=federation.hub.headers("auditor")
    ).json()
    assert [k["kid"] for k in keys] == [kid1, second.new_kid, third.new_kid]
    assert keys[0]["retired_at"] is not None
    assert keys[1]["retired_at"] is not None
    assert keys[2]["retired_at"] is None
    # Reading it needs a login; an unknown node is a clear 404 with a code.
    assert federation.hub.client.get("/v1/nodes/np-push/keys").status_code == 401
    unknown = federation.hub.client.get(
        "/v1/nodes/no-such-node/keys", headers=federation.hub.headers("auditor")
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "node_not_found"

    # A release key 1 signed before the first rotation still verifies (its own timestamp).
    with _hub_session(federation) as s:
        node, release = hub_federation.verify_node_record(
            session=s,
            token=release1,
            model=Release,
            signed_at=lambda r: r.released_at,
            skew_seconds=60,
        )
        assert (node.node_id, str(release.query_id)) == ("np-push", first)

    # Reconciliation after both rotations: key 1's checkpoint (the node's own and the hub's
    # copy) still verifies, and a checkpoint signed with key 3 counts too.
    node_audit.make_checkpoint(home=home, settings=settings)
    assert node_audit.publish_pending(home=home, settings=settings, transport=federation.to_hub)
    node_log = parse_export(list(node_audit.export_lines(home=home, settings=settings)))
    hub_log = parse_export(
        federation.hub.client.get(
            "/v1/audit/export", headers=federation.hub.headers("auditor")
        ).text.splitlines()
    )
    result = reconcile(hub_log, [node_log])
    node_check = next(v for v in result.verifications if v.owner_id == "np-push")
    assert node_check.problem is None, node_check.problem
    assert node_check.checkpoints_checked == 4
    assert not [d for d in result.differences if d.kind == "chain_invalid"]
    assert node_audit.verify(home=home, settings=settings).problem is None

    # A checkpoint dated after key 1 was retired is a forgery, even though key 1 signed it.
    late = AuditCheckpoint(node_id="np-push", seq=1, hash="0" * 64, signed_at=datetime.now(UTC))
    forged = verify_export(node_log, checkpoints=[signing.sign(late, key1)])
    assert forged.problem is not None
    assert forged.problem.kind == "checkpoint_invalid"
    published = federation.client.post(
        f"{HUB_URL}/v1/nodes/np-push/audit/checkpoints", json={"jws": signing.sign(late, key1)}
    )
    assert (published.status_code, published.json()["error"]["code"]) == (401, "key_retired")

    # Any new message key 1 signs is refused as retired.
    poll = NodePoll(
        hub_id=node_home.load_identity(home).hub_id or "",
        node_id="np-push",
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
        wait_seconds=0,
    )
    refused = federation.client.post(
        f"{HUB_URL}/v1/federation/poll", json={"jws": signing.sign(poll, key1)}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "key_retired")


@pytest.mark.parametrize("answer", ["unsigned", "forged"])
def test_node_switches_only_on_the_hubs_signed_answer(federation: Federation, answer: str) -> None:
    home = federation.homes["ke-pull"]
    before = node_home.load_identity(home)
    if answer == "unsigned":
        # What the hub used to answer: a plain node record, forgeable by anyone on the path.
        pending = signing.key_id(node_home.next_key(home))
        fake = {"kid": pending, "previous_kid": before.kid, "previous_valid_until": None}
        federation.to_hub.forge_next_answer = json.dumps(fake).encode()
    else:
        pending = signing.key_id(node_home.next_key(home))
        accepted = KeyRotationAccepted(
            hub_id=before.hub_id or "",
            node_id="ke-pull",
            kid=pending,
            previous_kid=before.kid,
            previous_valid_until=datetime.now(UTC),
            issued_at=datetime.now(UTC),
        )
        intruder = signing.generate_key()
        federation.to_hub.forge_next_answer = (
            Signed(jws=signing.sign(accepted, intruder)).model_dump_json().encode()
        )
    with pytest.raises(NodeError) as refused:
        sync.rotate_key(home=home, client=federation.client)
    assert refused.value.code == "rotation_unconfirmed"
    # The node still signs with its old key and keeps the new one pending.
    assert node_home.load_identity(home).kid == before.kid
    assert signing.key_id(node_home.load_key(home)) == before.kid
    assert signing.key_id(keys.load_private_key(home / node_home.NEXT_KEY_FILE)) == pending
    # The hub did pin the pending key (only its answer was replaced): running again resumes.
    assert federation.hub_node("ke-pull")["kid"] == pending
    rotated = sync.rotate_key(home=home, client=federation.client)
    assert rotated.new_kid == pending == node_home.load_identity(home).kid
    assert not (home / node_home.NEXT_KEY_FILE).exists()


class _hub_session:
    def __init__(self, federation: Federation) -> None:
        self.engine = make_engine(federation.hub.settings.effective_database_url)

    def __enter__(self) -> Session:
        self.session = init_db(self.engine)()
        return self.session

    def __exit__(self, *_exc: object) -> None:
        self.session.close()
        self.engine.dispose()


def test_hub_key_rotation_reaches_push_and_pull_nodes_on_their_next_contact(
    federation: Federation,
) -> None:
    hub = federation.hub
    old_identity = hub_home_files.load_identity(hub.settings.home)
    old_hub_key = hub_home_files.load_key(hub.settings.home)
    push_home, pull_home = federation.homes["np-push"], federation.homes["ke-pull"]

    # A forged announcement (signed only by a key the nodes never pinned) changes nothing,
    # whether it comes on a push request or is handed to the node directly.
    intruder = signing.generate_key()
    fake = HubKeyAnnouncement(
        hub_id=old_identity.hub_id,
        old_kid=old_identity.kid,
        new_public_jwk=signing.public_jwk(intruder),
        issued_at=datetime.now(UTC),
        overlap_until=datetime.now(UTC) + timedelta(days=1),
    )
    forged = HubKeyRotation(
        by_old_key=signing.sign(fake, intruder), by_new_key=signing.sign(fake, intruder)
    ).model_dump_json()
    with httpx.Client(transport=_SyncASGI(federation.push_app)) as push:
        refused = push.post(
            f"{PUSH_URL}/v1/queries",
            json={"jws": "not-a-request-at-all"},
            headers={HUB_KEY_ROTATION_HEADER: forged},
        )
    assert refused.status_code >= 400
    assert not sync.learn_hub_key(home=pull_home, announced=forged)
    for home in (push_home, pull_home):
        identity = node_home.load_identity(home)
        assert identity.hub_public_jwk == old_identity.public_jwk
        assert identity.previous_hub_keys == ()

    # The secretariat rotates the hub key and restarts the hub.
    result = CliRunner().invoke(sauti_app, ["hub", "rotate-key", "--home", str(hub.settings.home)])
    assert result.exit_code == 0, result.output
    new_identity = hub_home_files.load_identity(hub.settings.home)
    assert new_identity.kid != old_identity.kid
    assert new_identity.previous_keys[0].kid == old_identity.kid
    restarted = _restart(federation)
    try:
        _after_hub_rotation(federation, old_identity, old_hub_key, new_identity)
    finally:
        restarted.client.close()


def _after_hub_rotation(
    federation: Federation,
    old_identity: hub_home_files.HubIdentity,
    old_hub_key: Any,
    new_identity: hub_home_files.HubIdentity,
) -> None:
    push_home, pull_home = federation.homes["np-push"], federation.homes["ke-pull"]
    # Both nodes answer the next query: the push node learns the key from the request's
    # header, the pull node from its poll's answer, each after checking both signatures.
    query_id = federation.submit()
    stats = sync.poll_once(
        settings=federation.settings("ke-pull"), client=federation.client, wait_seconds=0
    )
    assert stats.answered == 1
    assert federation.outcome(query_id, "np-push", wait=20) == ("ok", None)
    assert federation.outcome(query_id, "ke-pull", wait=20) == ("ok", None)
    for home in (push_home, pull_home):
        identity = node_home.load_identity(home)
        assert identity.hub_public_jwk == new_identity.public_jwk
        assert [k.kid for k in identity.previous_hub_keys] == [old_identity.kid]
        # The agreement the old hub key signed still verifies at the node.
        preview = node_agreements.preview(home=home, agreement=federation.agreement)
        assert preview.already_signed

    # After the overlap, a new request signed with the old hub key is refused.
    request = QueryRequest.model_validate_json(_request_json(federation, query_id, "ke-pull"))
    replay = request.model_copy(update={"query_id": uuid.uuid4()})
    old_signed = Signed(jws=signing.sign(replay, old_hub_key))
    identity = node_home.load_identity(pull_home)
    assert old_identity.kid in node_home.hub_keys(identity, now=datetime.now(UTC))
    # Time passes: the overlap ends (here: as early as it can, at the rotation itself).
    ended = identity.previous_hub_keys[0].model_copy(
        update={"overlap_until": identity.previous_hub_keys[0].retired_at}
    )
    node_home._write_identity(
        pull_home, identity.model_copy(update={"previous_hub_keys": (ended,)})
    )
    with pytest.raises(NodeError) as late:
        handle_query(settings=federation.settings("ke-pull"), signed=old_signed)
    assert late.value.code == "signature_invalid"
    # ... while what the old key signed before stays valid.
    assert node_agreements.preview(home=pull_home, agreement=federation.agreement).already_signed


class _SyncASGI(httpx.BaseTransport):
    """Drive an ASGI node app from a sync client (one event loop per request)."""

    def __init__(self, app: httpx.ASGITransport) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self.app.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, content=content)

        return anyio.run(send)


def _restart(federation: Federation) -> Hub:
    """A new hub app on the same home and database (it loads the rotated key)."""
    old = federation.hub
    app = create_hub_app(
        old.settings, transport=RoutingTransport({"np-push.nodes.test": federation.push_app})
    )
    hub = Hub(
        client=AppClient(app),
        settings=old.settings,
        identity=hub_home_files.load_identity(old.settings.home),
        nodes={},
        tokens=old.tokens,
    )
    federation.hub = hub
    federation.to_hub.hub = hub
    return hub


def _request_json(federation: Federation, query_id: str, node_id: str) -> str:
    with _hub_session(federation) as s:
        row = s.scalars(
            select(QueryNodeRow).where(
                QueryNodeRow.query_id == query_id, QueryNodeRow.node_id == node_id
            )
        ).one()
        return signing.unverified_payload(row.request_jws).decode()
