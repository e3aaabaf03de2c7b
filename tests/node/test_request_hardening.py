"""No input crashes, bloats or poisons a push node, and the chain records only verified parties
(issue #20), on SQLite and PostgreSQL (the `node` and `db_url` fixtures).

* rho: below the agreement's floor (`min_rho`, default 1e-4) refused before any charge; 1e-13
  and 1e-300 keep the node's peak RSS within 50 MB (/proc, no timing).
* Self-contradicting requests get their own codes: a signed payload that is not a query
  (`invalid_request`, not `signature_invalid`), rho differing from the spec's
  (`rho_mismatch`), expiring before issued (`invalid_request`), repeated filters
  (`invalid_spec`).
* Unverified traffic (no, bad or foreign signatures, junk bodies) leaves the chain as it was
  and is counted in `sauti_node_unverified_requests_total`; verified refusals are chained.
* A request signed for secure aggregation replayed to the plain route is refused uncharged,
  and a query id used in one mode is refused in the other.
* A release that fails once charged answers `release_failed` and the node goes on; its charge
  is returned when no noise was drawn, kept when noise may have been drawn. No noise is drawn
  before the charge is committed.
No refusal changes a budget.
"""

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from contracts import signing
from contracts.v1 import AgreementTerms, Filter, SecureInvite
from contracts.v1.agreement import DEFAULT_MIN_RHO
from contracts.v1.federation import HUB_KEY_ROTATION_HEADER
from node.audit import service as audit
from node.datasets import service as datasets
from node.db import transaction
from node.exceptions import NodeError
from node.home import load_identity
from node.ledger import service as ledger
from node.ledger.service import budget_report
from node.metrics import HUB_LAST_SEEN
from node.privacy import engine, mechanisms
from node.queries import modes
from node.security import UNVERIFIED, RateLimitedLog
from tests.node.conftest import HUB_ID, Node, make_node, terms
from tests.node.memory_support import MB, peak_rss_growth
from tests.node.test_secure_node import Peer, invite, own_member, roster


def spent(node: Node) -> tuple[int, Decimal]:
    (line,) = budget_report(home=node.home, settings=node.settings)
    return line.queries, line.rho_spent


def chain(node: Node) -> int:
    return audit.head(database_url=node.settings.db_url)[0]


def error(response: Any) -> tuple[int, str]:
    assert set(response.json()) == {"error"}, response.text
    return response.status_code, response.json()["error"]["code"]


def unverified_count() -> float:
    return sum(
        sample.value
        for metric in UNVERIFIED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_rho_below_the_floor_is_refused_before_any_charge(node: Node) -> None:
    assert node.terms.rho_floor == DEFAULT_MIN_RHO
    before = chain(node)
    for rho in (DEFAULT_MIN_RHO / 2, 1e-13, 1e-300):
        answer = node.post(node.request(node.spec(group_by=("sex",), rho=rho)))
        assert error(answer) == (403, "rho_below_floor")
    assert spent(node) == (0, 0.0)
    # A verified hub request out of terms: chained, as every verified refusal is.
    assert chain(node) == before + 3 * 2
    assert node.post(node.request(node.spec(rho=DEFAULT_MIN_RHO))).status_code == 200


def test_tiny_rho_keeps_the_nodes_memory_flat(tmp_path: Path, db_url: str) -> None:
    # The lowest floor an agreement may set; the node is asked far below it, and at it.
    node = make_node(tmp_path / "n", db_url, min_rho=1e-8)
    assert node.post(node.request(node.spec(group_by=("sex",)))).status_code == 200  # warm
    with peak_rss_growth() as growth:
        for rho in (1e-13, 1e-300):
            answer = node.post(node.request(node.spec(group_by=("sex",), rho=rho)))
            assert error(answer) == (403, "rho_below_floor")
        # At the floor: sigma ~ 7,071, an interval from the closed form.
        assert node.post(node.request(node.spec(group_by=("sex",), rho=1e-8))).status_code == 200
    assert growth.bytes < 50 * MB
    assert spent(node) == (2, Decimal("0.10000001"))


def test_the_floor_term_and_its_canonical_form() -> None:
    base = terms("cso-node")
    # Left out of the canonical JSON at its default: every digest signed before it holds.
    assert "min_rho" not in signing.canonical_json(base).decode()
    explicit = terms("cso-node", min_rho=0.01)
    assert '"min_rho":0.01' in signing.canonical_json(explicit).decode()
    assert explicit.rho_floor == 0.01
    # A default floor yields to a smaller per-query cap; an explicit one may not exceed it.
    assert terms("cso-node", rho_per_query_max=5e-5).rho_floor == 5e-5
    with pytest.raises(ValueError, match="min_rho cannot exceed"):
        terms("cso-node", rho_per_query_max=0.01, min_rho=0.02)
    with pytest.raises(ValueError, match="greater than or equal"):
        terms("cso-node", min_rho=1e-9)
    assert AgreementTerms.model_validate_json(base.model_dump_json()) == base


def test_an_explicit_floor_is_enforced(tmp_path: Path, db_url: str) -> None:
    node = make_node(tmp_path / "n", db_url, min_rho=0.05)
    assert error(node.post(node.request(node.spec(rho=0.01)))) == (403, "rho_below_floor")
    assert node.post(node.request(node.spec(rho=0.05))).status_code == 200
    assert spent(node) == (1, Decimal("0.05"))


def test_self_contradicting_requests_get_their_own_codes(node: Node) -> None:
    now = datetime.now(UTC)
    inverted = node.request(issued_at=now, expires_at=now - timedelta(seconds=1))
    assert error(node.post(inverted)) == (422, "invalid_request")
    assert error(node.post(node.request(rho=0.2))) == (422, "rho_mismatch")
    twice = node.spec(
        filters=(
            Filter(column="sex", levels=("male",)),
            Filter(column="sex", levels=("female",)),
        )
    )
    assert error(node.post(node.request(twice))) == (422, "invalid_spec")
    level_twice = node.spec(filters=(Filter(column="sex", levels=("male", "male")),))
    assert error(node.post(node.request(level_twice))) == (422, "invalid_spec")
    # Signed by the hub, but not a query request: invalid, not a bad signature.
    other = SecureInvite(
        hub_id=HUB_ID,
        node_id=node.identity.node_id,
        query_id=uuid.uuid4(),
        attempt=1,
        request="x" * 20,
        issued_at=now,
        nonce=uuid.uuid4().hex,
    )
    answer = node.client.post("/v1/queries", json={"jws": signing.sign(other, node.hub_key)})
    assert error(answer) == (422, "invalid_request")
    assert spent(node) == (0, 0.0)


def test_junk_leaves_the_chain_alone_and_is_counted(node: Node) -> None:
    request = node.request()
    good = signing.sign(request, node.hub_key)
    head, payload, signature = good.split(".")
    junk: list[dict[str, Any]] = [
        {"json": {"jws": signing.sign(request, signing.generate_key())}},  # another key
        {"json": {"jws": f"{head}.{payload}.{signature[::-1]}"}},  # a broken signature
        {"json": {"jws": "not.a.jws-at-all"}},
        {"json": {"jws": "x" * 40}},
        {"json": {"nothing": "here"}},
        {"content": b"\x00\xff garbage", "headers": {"content-type": "application/json"}},
        {},
    ]
    before, counted = chain(node), unverified_count()
    HUB_LAST_SEEN.set(0)
    for _ in range(20):
        for kwargs in junk:
            answer = node.client.post("/v1/queries", **kwargs)
            assert answer.status_code in (401, 422), answer.text
            assert answer.json()["error"]["code"] in ("unsigned", "signature_invalid")
    assert chain(node) == before
    assert unverified_count() == counted + 20 * len(junk)
    # A forged hub key announcement with it: refused, counted, and the pinned key stays.
    pinned = node.identity.hub_public_jwk
    announced = {HUB_KEY_ROTATION_HEADER: '{"by_old_key": "x", "by_new_key": "y"}'}
    answer = node.client.post("/v1/queries", json={"jws": "x" * 40}, headers=announced)
    assert error(answer) == (401, "unsigned")
    assert unverified_count() == counted + 20 * len(junk) + 2
    assert load_identity(node.home).hub_public_jwk == pinned
    assert chain(node) == before
    assert spent(node) == (0, 0.0)
    assert HUB_LAST_SEEN._value.get() == 0  # junk is not the hub being heard
    # A verified request that is refused is still chained, under the verified hub.
    assert error(node.post(node.request(node_id="someone-else"))) == (403, "wrong_node")
    assert HUB_LAST_SEEN._value.get() > 0
    assert chain(node) == before + 2
    entries = audit.entries(database_url=node.settings.db_url)
    assert {e.actor for e in entries[before:]} == {"hub"}


def test_the_security_log_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    logger = logging.getLogger("node.security.test")
    limited = RateLimitedLog(logger, burst=10, interval=6.0, clock=lambda: now[0])
    caplog.set_level("WARNING", logger=logger.name)
    written = [limited.warning("refused %s", "signature_invalid") for _ in range(60)]
    assert written.count(True) == 10
    now[0] += 12.0  # two lines' worth of time later
    assert limited.warning("refused %s", "unsigned")
    lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert len(lines) == 11
    assert lines[-1] == "refused unsigned (50 similar refusals not logged before this one)"


@pytest.fixture
def secure_node(tmp_path: Path, db_url: str) -> Node:
    made = make_node(tmp_path / "node", db_url, aggregation="secure")
    made.aggregation = "secure"
    return made


def test_a_secure_request_replayed_to_the_plain_route_is_refused(secure_node: Node) -> None:
    node, peer = secure_node, Peer()
    request = node.request()
    offer = invite(node, request).json()["offer"]
    members = [own_member(node, offer), peer.member(request.query_id, 1)]
    assert roster(node, request, members).status_code == 200
    assert spent(node) == (1, Decimal("0.1"))
    before = chain(node)
    # The very request signed for secure aggregation, replayed to /v1/queries.
    assert error(node.post(request)) == (403, "wrong_route")
    assert chain(node) == before  # nobody verified replayed it: the security log only
    # A plain request under the same query id (only a hub could sign it): refused, chained.
    plain = node.request(query_id=request.query_id, aggregation="per_node")
    assert error(node.post(plain)) == (409, "query_mode_conflict")
    assert chain(node) == before + 2
    assert spent(node) == (1, Decimal("0.1"))


def test_a_query_id_answered_plainly_is_refused_for_secure_aggregation(
    secure_node: Node,
) -> None:
    node = secure_node
    plain = node.request(aggregation="per_node")
    assert node.post(plain).status_code == 200
    again = node.request(query_id=plain.query_id)
    assert error(invite(node, again)) == (409, "query_mode_conflict")
    # Inside a secure phase, a request not signed for secure aggregation is refused.
    assert error(invite(node, node.request(aggregation="per_node"))) == (403, "wrong_route")
    assert spent(node) == (1, Decimal("0.1"))


def _break(node: Node) -> tuple[Path, bytes]:
    path = datasets.load(home=node.home, name="survey").parquet_path
    original = path.read_bytes()
    path.write_bytes(b"PAR1 this is not a parquet file PAR1")
    return path, original


def test_a_release_that_fails_before_noise_returns_its_charge(node: Node) -> None:
    path, original = _break(node)
    request = node.request(node.spec(group_by=("sex",)))
    before = chain(node)
    for _ in range(2):  # the same task again fails the same way, charged and returned
        assert error(node.post(request)) == (500, "release_failed")
        assert spent(node) == (0, 0)
    entries = audit.entries(database_url=node.settings.db_url)[before:]
    failed = [e for e in entries if e.action == "release_failed"]
    assert len(failed) == 2
    assert all(e.details["noise_drawn"] is False for e in failed)
    assert [e.action for e in entries].count("budget_released") == 2
    # The node goes on: repaired, the same query id is answered and charged once.
    path.write_bytes(original)
    assert node.post(request).status_code == 200
    assert spent(node) == (1, Decimal("0.1"))


def test_a_release_that_fails_after_noise_keeps_its_charge(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("post-processing failed")

    with monkeypatch.context() as patch:
        patch.setattr(engine, "release_exact", fails)
        request = node.request()
        assert error(node.post(request)) == (500, "release_failed")
    # Noise may have been drawn: the budget stays spent (the trust model).
    assert spent(node) == (1, Decimal("0.1"))
    (failed,) = [
        e for e in audit.entries(database_url=node.settings.db_url) if e.action == "release_failed"
    ]
    assert failed.details["noise_drawn"] is True
    assert failed.details["error"] == "RuntimeError"
    assert "post-processing" not in str(failed.details)
    # A retry under the same id is answered, without a second charge.
    assert node.post(request).status_code == 200
    assert spent(node) == (1, Decimal("0.1"))


def test_noise_is_drawn_only_once_the_charge_is_durable(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact pass runs beside the ledger transaction (node.queries.service); the first
    noise draw still comes after that transaction committed: another transaction then sees
    the charge, and the chain ends with its entry."""
    seen: list[tuple[tuple[int, Decimal], str]] = []
    draw = mechanisms.release

    def observed(**kwargs: Any) -> Any:
        if not seen:
            last = audit.entries(database_url=node.settings.db_url)[-1]
            seen.append((spent(node), last.action))
        return draw(**kwargs)

    monkeypatch.setattr(mechanisms, "release", observed)
    assert node.post(node.request()).status_code == 200
    assert seen == [((1, Decimal("0.1")), "budget_charged")]


def test_a_secure_contribution_that_fails_before_noise_returns_its_charge(
    secure_node: Node,
) -> None:
    node = secure_node
    path, original = _break(node)
    request = node.request()
    offer = invite(node, request).json()["offer"]
    members = [own_member(node, offer), Peer().member(request.query_id, 1)]
    assert error(roster(node, request, members)) == (500, "release_failed")
    assert spent(node) == (0, 0)
    path.write_bytes(original)
    assert roster(node, request, members).status_code == 200  # the same roster, repaired
    assert spent(node) == (1, Decimal("0.1"))


def test_a_plain_charge_racing_a_secure_binding_waits_and_is_refused(node: Node) -> None:
    """A secure phase binds an id and holds its transaction open; a plain request for the
    same id reserves meanwhile. It must wait for the binding to commit (the budget row
    lock; SQLite's BEGIN IMMEDIATE) and then be refused, its charge rolled back."""
    query_id = uuid.uuid4()
    url = node.settings.db_url
    bound, plain_done = threading.Event(), threading.Event()
    outcome: list[str] = []

    def secure_phase() -> None:
        with transaction(url) as session:
            modes.bind_secure(
                session, query_id=query_id, agreement_id=node.terms.agreement_id, now=_now()
            )
            bound.set()
            # Without the lock the plain request would commit meanwhile; with it, it waits.
            plain_done.wait(timeout=1.0)

    def plain_request() -> None:
        bound.wait()
        try:
            with transaction(url) as session:
                ledger.reserve(
                    session,
                    query_id=query_id,
                    request_digest="0" * 64,
                    terms=node.terms,
                    rho=0.1,
                    now=_now(),
                )
                modes.check_plain(session, query_id=query_id)
            outcome.append("charged")
        except NodeError as exc:
            outcome.append(exc.code)
        plain_done.set()

    threads = [threading.Thread(target=secure_phase), threading.Thread(target=plain_request)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome == ["query_mode_conflict"]
    assert spent(node) == (0, 0.0)


def _now() -> datetime:
    return datetime.now(UTC)
