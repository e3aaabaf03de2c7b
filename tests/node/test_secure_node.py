"""The node's side of secure aggregation over its HTTP routes: what it checks before it offers
a key and before it contributes, what it charges, and that its masked vector is exact noise
plus masks that a peer's cancel."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from joserfc.jwk import OKPKey

from contracts import signing
from contracts.v1 import (
    QueryRequest,
    RosterMember,
    SecureContribution,
    SecureInvite,
    SecureOffer,
    SecureRoster,
)
from contracts.v1.federation import HUB_KEY_ROTATION_HEADER
from hub import home as hub_home
from hub.queries.secure_combine import unmasked_sum, vector
from node import home as node_home
from node.ledger import service as ledger
from node.privacy import secure as noise
from tests.node.conftest import HUB_ID, Node, frame, make_node

PEER = "peer-cso"
SEX_KEYS = (("female",), ("male",), ("other",))


class Peer:
    """Another member of the roster: its node key and its per-attempt X25519 key."""

    def __init__(self, node_id: str = PEER) -> None:
        self.node_id = node_id
        self.key = signing.generate_key()
        self.x25519 = X25519PrivateKey.generate()

    def member(
        self, query_id: uuid.UUID, attempt: int, *, signer: OKPKey | None = None
    ) -> RosterMember:
        offer = SecureOffer(
            query_id=query_id,
            node_id=self.node_id,
            attempt=attempt,
            request_digest="0" * 64,
            public_key=noise.public_key_text(self.x25519.public_key()),
            keys_digest="0" * 64,
            offered_at=datetime.now(UTC),
        )
        return RosterMember(
            node_id=self.node_id,
            public_jwk=signing.public_jwk(self.key),
            offer=signing.sign(offer, signer or self.key),
        )


@pytest.fixture
def secure_node(tmp_path: Path, db_url: str) -> Node:
    made = make_node(
        tmp_path / "node", db_url, aggregation="secure", measures=("count", "share", "mean")
    )
    made.aggregation = "secure"
    return made


def invite(
    node: Node,
    request: QueryRequest,
    *,
    attempt: int = 1,
    headers: dict[str, str] | None = None,
    **overrides: Any,
) -> Any:
    fields: dict[str, Any] = {
        "hub_id": HUB_ID,
        "node_id": node.identity.node_id,
        "query_id": request.query_id,
        "attempt": attempt,
        "request": signing.sign(request, node.hub_key),
        "issued_at": datetime.now(UTC),
        "nonce": uuid.uuid4().hex,
    }
    key = overrides.pop("key", node.hub_key)
    fields.update(overrides)
    token = signing.sign(SecureInvite(**fields), key)
    return node.client.post("/v1/secure/offers", json={"jws": token}, headers=headers or {})


def roster(
    node: Node,
    request: QueryRequest,
    members: list[RosterMember],
    *,
    attempt: int = 1,
    keys: tuple[tuple[str, ...], ...] | None = None,
) -> Any:
    message = SecureRoster(
        hub_id=HUB_ID,
        node_id=node.identity.node_id,
        query_id=request.query_id,
        attempt=attempt,
        request=signing.sign(request, node.hub_key),
        members=tuple(members),
        keys=keys if keys is not None else SEX_KEYS,
        issued_at=datetime.now(UTC),
        nonce=uuid.uuid4().hex,
    )
    token = signing.sign(message, node.hub_key)
    return node.client.post("/v1/secure/contributions", json={"jws": token})


def own_member(node: Node, offer_jws: str) -> RosterMember:
    return RosterMember(
        node_id=node.identity.node_id, public_jwk=node.identity.public_jwk, offer=offer_jws
    )


def spent(node: Node) -> tuple[int, Decimal]:
    (line,) = ledger.budget_report(home=node.home, settings=node.settings)
    return line.queries, line.rho_spent


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_offer_then_contribution_is_noise_plus_masks_that_cancel(secure_node: Node) -> None:
    node, peer = secure_node, Peer()
    request = node.request()
    first = invite(node, request)
    assert first.status_code == 200, first.text
    assert invite(node, request).json() == first.json()  # one key per attempt
    offer = signing.verify_model(
        first.json()["offer"], signing.load_public_key(node.identity.public_jwk), SecureOffer
    )
    assert offer.attempt == 1
    assert spent(node) == (0, 0.0)  # an offer charges nothing
    members = [own_member(node, first.json()["offer"]), peer.member(request.query_id, 1)]
    answer = roster(node, request, members)
    assert answer.status_code == 200, answer.text
    assert spent(node) == (1, Decimal("0.1"))
    contribution = signing.verify_model(
        answer.json()["jws"], signing.load_public_key(node.identity.public_jwk), SecureContribution
    )
    (component,) = contribution.components
    assert contribution.members == tuple(sorted((node.identity.node_id, PEER)))
    # The peer's own contribution of zeros, masked with the same pair seed, cancels the masks.
    peer_vector = noise.masked(
        np.zeros(len(contribution.keys), dtype=np.int64),
        node_id=PEER,
        private=peer.x25519,
        peers={node.identity.node_id: noise.load_public_key(offer.public_key)},
        context=f"{request.query_id}|1",
        component="count",
    )
    total = unmasked_sum([vector(component.values), peer_vector])
    rows = frame()
    for key, value in zip(contribution.keys, total, strict=True):
        exact = rows.filter(pl.col("sex") == key[0]).height
        # The pair's noise: two shares summing to sigma ~ 2.2 at rho 0.1; 20 is ~9 sigma.
        assert abs(int(value) - exact) < 20
    # A retry of the same roster resends the stored contribution and charges nothing more.
    again = roster(node, request, members)
    assert again.json() == answer.json()
    assert spent(node) == (1, Decimal("0.1"))


def test_another_roster_for_the_same_attempt_is_refused(secure_node: Node) -> None:
    node = secure_node
    request = node.request()
    offer = invite(node, request).json()["offer"]
    assert (
        roster(
            node, request, [own_member(node, offer), Peer().member(request.query_id, 1)]
        ).status_code
        == 200
    )
    other = roster(
        node, request, [own_member(node, offer), Peer("other-cso").member(request.query_id, 1)]
    )
    assert error(other) == (409, "query_id_conflict")
    assert spent(node)[0] == 1


def test_each_attempt_is_charged(secure_node: Node) -> None:
    node = secure_node
    request = node.request()
    for attempt in (1, 2):
        offer = invite(node, request, attempt=attempt).json()["offer"]
        members = [own_member(node, offer), Peer().member(request.query_id, attempt)]
        assert roster(node, request, members, attempt=attempt).status_code == 200
    assert spent(node) == (2, Decimal("0.2"))


def test_agreements_without_secure_aggregation_are_refused(tmp_path: Path, db_url: str) -> None:
    node = make_node(tmp_path / "n", db_url)
    node.aggregation = "secure"
    answer = invite(node, node.request())
    assert error(answer) == (403, "secure_not_allowed")
    assert spent(node) == (0, 0.0)


def test_measures_outside_secure_aggregation_are_refused(secure_node: Node) -> None:
    node = secure_node
    spec = node.spec(measure="mean", column="age")
    assert error(invite(node, node.request(spec))) == (403, "secure_not_allowed")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"key": "forged"}, (401, "signature_invalid")),
        ({"node_id": "another-node"}, (403, "wrong_node")),
        ({"issued_at": datetime.now(UTC) - timedelta(days=1)}, (401, "request_expired")),
    ],
)
def test_invites_that_do_not_check_out_are_refused(
    secure_node: Node, overrides: dict[str, Any], expected: tuple[int, str]
) -> None:
    if overrides.get("key") == "forged":
        overrides["key"] = signing.generate_key()
    assert error(invite(secure_node, secure_node.request(), **overrides)) == expected


def test_unsigned_bodies_are_refused(secure_node: Node) -> None:
    for path in ("/v1/secure/offers", "/v1/secure/contributions"):
        answer = secure_node.client.post(path, json={"not": "signed"})
        assert error(answer) == (401, "unsigned")


def test_rosters_that_do_not_check_out_charge_nothing(secure_node: Node) -> None:
    node, peer = secure_node, Peer()
    request = node.request()
    offer = invite(node, request).json()["offer"]
    own = own_member(node, offer)
    forged = peer.member(request.query_id, 1, signer=signing.generate_key())
    cases = [
        [own, forged],  # a peer's offer not signed by its node key
        [own],  # no peer at all
        [peer.member(request.query_id, 1)],  # without this node's own offer
        [own, peer.member(request.query_id, 2)],  # a peer's offer for another attempt
        [own, peer.member(request.query_id, 1), peer.member(request.query_id, 1)],  # twice
    ]
    for members in cases:
        assert error(roster(node, request, members)) == (422, "roster_invalid")
    good = [own, peer.member(request.query_id, 1)]
    for keys in (SEX_KEYS[:2], (*SEX_KEYS, ("male",))):  # a cell missing, a cell twice
        assert error(roster(node, request, good, keys=keys)) == (422, "roster_invalid")
    unknown = roster(node, request, [own, peer.member(request.query_id, 3)], attempt=3)
    assert error(unknown) == (409, "secure_session_unknown")
    assert spent(node) == (0, 0.0)


def test_an_exhausted_budget_is_refused_at_the_offer(tmp_path: Path, db_url: str) -> None:
    node = make_node(
        tmp_path / "n", db_url, aggregation="secure", rho_per_query_max=1.0, rho_budget=1.0
    )
    node.aggregation = "secure"
    spec = node.spec(group_by=("sex",), rho=1.0)
    request = node.request(spec)
    offer = invite(node, request).json()["offer"]
    members = [own_member(node, offer), Peer().member(request.query_id, 1)]
    assert roster(node, request, members).status_code == 200
    assert error(invite(node, node.request(spec))) == (403, "budget_exhausted")


def test_levels_another_member_holds_are_structural_zeros(secure_node: Node) -> None:
    node, peer = secure_node, Peer()
    request = node.request()
    answer = invite(node, request).json()
    assert [tuple(k) for k in answer["keys"]] == list(SEX_KEYS)
    keys = (("unknown",), *SEX_KEYS)  # the peer holds a level this node's contract lacks
    members = [own_member(node, answer["offer"]), peer.member(request.query_id, 1)]
    reply = roster(node, request, members, keys=keys)
    assert reply.status_code == 200, reply.text
    contribution = SecureContribution.model_validate_json(
        signing.unverified_payload(reply.json()["jws"])
    )
    assert contribution.keys == keys
    offer = SecureOffer.model_validate_json(signing.unverified_payload(answer["offer"]))
    peer_vector = noise.masked(
        np.zeros(len(keys), dtype=np.int64),
        node_id=PEER,
        private=peer.x25519,
        peers={node.identity.node_id: noise.load_public_key(offer.public_key)},
        context=f"{request.query_id}|1",
        component="count",
    )
    total = unmasked_sum([vector(contribution.components[0].values), peer_vector])
    assert abs(int(total[0])) < 20  # noise only
    assert abs(int(total[1:].sum()) - 300) < 40


def test_a_hub_key_rotation_is_learnt_on_the_secure_routes(tmp_path: Path, db_url: str) -> None:
    node = make_node(tmp_path / "n", db_url, aggregation="secure")
    node.aggregation = "secure"
    hub_dir = tmp_path / "hub"
    hub = hub_home.init_home(hub_dir, hub_id=HUB_ID)
    node_home.pin_hub(node.home, hub_id=HUB_ID, public_jwk=hub.public_jwk)
    rotation = hub_home.rotate_key(hub_dir, overlap_seconds=3600)
    node.hub_key = hub_home.load_key(hub_dir)  # the hub now signs with its new key
    request = node.request()
    assert error(invite(node, request)) == (401, "signature_invalid")
    header = {HUB_KEY_ROTATION_HEADER: rotation.model_dump_json()}
    assert invite(node, request, headers=header).status_code == 200
    assert (
        node_home.load_identity(node.home).hub_public_jwk
        == hub_home.load_identity(hub_dir).public_jwk
    )
