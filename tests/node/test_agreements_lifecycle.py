"""Signing, suspension and revocation at the node, the hub offline, periods and amendments."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import signing
from contracts.agreement_rules import validity_days
from contracts.v1 import AgreementNotice, Signed
from node.agreements import service as agreements
from node.agreements.exceptions import AgreementInvalid, AgreementRevoked, TermNotInContract
from node.home import pin_hub
from node.ledger import service as ledger
from node.queries.service import handle_query
from tests.node.conftest import Node, hub_signed, make_node, terms

CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard port: nothing listens, the hub is "offline"


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def _ask(
    node: Node,
    now: datetime,
    *,
    rho: float = 0.1,
    version: int | None = None,
    digest: str | None = None,
) -> Signed:
    request = node.request(
        node.spec(rho=rho),
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        **({"agreement_version": version} if version else {}),
        **({"agreement_digest": digest} if digest else {}),
    )
    return handle_query(
        settings=node.settings, signed=Signed(jws=signing.sign(request, node.hub_key)), now=now
    )


def test_revoked_is_refused_with_the_hub_offline_and_reported_later(
    tmp_path: Path, db_url: str
) -> None:
    n = make_node(tmp_path / "n", db_url)
    hub_id = n.identity.hub_id
    assert hub_id is not None
    pin_hub(n.home, hub_id=hub_id, public_jwk=signing.public_jwk(n.hub_key), url=CLOSED_PORT_URL)
    outcome = agreements.revoke(
        home=n.home, agreement_id="mou-1", settings=n.settings, reason="consent withdrawn"
    )
    assert outcome.changed
    offline = agreements.report_notices(home=n.home, settings=n.settings)
    assert (offline.sent, offline.pending, offline.hub_reachable) == (0, 1, False)
    response = n.post(n.request())
    assert response.status_code == 403
    assert _code(response) == "agreement_revoked"
    with pytest.raises(AgreementRevoked):
        agreements.resume(home=n.home, agreement_id="mou-1", settings=n.settings)

    # The hub is back: the queued notice, signed by the node key, is delivered once.
    received: list[AgreementNotice] = []

    def hub(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/agreements/mou-1/notices"
        token = json.loads(request.content)["jws"]
        received.append(
            signing.verify_model(
                token, signing.load_public_key(n.identity.public_jwk), AgreementNotice
            )
        )
        return httpx.Response(200, json={})

    back = agreements.report_notices(
        home=n.home, settings=n.settings, transport=httpx.MockTransport(hub)
    )
    assert (back.sent, back.pending, back.hub_reachable) == (1, 0, True)
    assert [(r.status, r.reason, r.node_id) for r in received] == [
        ("revoked", "consent withdrawn", n.identity.node_id)
    ]
    # What leaves the node is the status only: no data, no counts, no budget figures.
    assert set(received[0].model_dump()) == {"agreement_id", "node_id", "status", "at", "reason"}
    again = agreements.report_notices(
        home=n.home, settings=n.settings, transport=httpx.MockTransport(hub)
    )
    assert again.sent == 0
    assert len(received) == 1


def test_suspend_takes_effect_on_the_next_request_and_resume_restores(node: Node) -> None:
    assert node.post(node.request()).status_code == 200
    agreements.suspend(home=node.home, agreement_id="mou-1", settings=node.settings)
    assert _code(node.post(node.request())) == "agreement_suspended"
    # Suspending twice changes nothing and queues no second notice.
    assert not agreements.suspend(
        home=node.home, agreement_id="mou-1", settings=node.settings
    ).changed
    agreements.resume(home=node.home, agreement_id="mou-1", settings=node.settings)
    assert node.post(node.request()).status_code == 200
    report = agreements.report_notices(home=node.home, settings=node.settings)
    assert report.pending == 2  # suspended, active; no hub URL pinned in this test
    hub_refuses = httpx.MockTransport(
        lambda r: httpx.Response(403, json={"error": {"code": "not_a_party", "message": "x"}})
    )
    pin_hub(
        node.home,
        hub_id="test-hub",
        public_jwk=signing.public_jwk(node.hub_key),
        url="http://hub.test",
    )
    refused = agreements.report_notices(
        home=node.home, settings=node.settings, transport=hub_refuses
    )
    assert (refused.refused, refused.pending) == (2, 0)


def test_quarter_rolls_over_with_a_fixed_clock(tmp_path: Path, db_url: str) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n = make_node(
        tmp_path / "n",
        db_url,
        budget_period="quarter",
        rho_budget=0.25,
        rho_per_query_max=0.2,
        valid_from=start,
        valid_until=datetime(2027, 12, 31, tzinfo=UTC),
    )
    end_of_q1 = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
    _ask(n, end_of_q1, rho=0.2)
    with pytest.raises(Exception) as refused:
        _ask(n, end_of_q1 + timedelta(minutes=30), rho=0.1)
    assert getattr(refused.value, "code", None) == "budget_exhausted"
    q2 = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    _ask(n, q2, rho=0.2)
    line = ledger.budget_report(home=n.home, settings=n.settings, now=q2)[0]
    assert (line.period, line.rho_spent, line.rho_spent_all_time) == (
        "2026-Q2",
        Decimal("0.2"),
        Decimal("0.4"),
    )
    assert line.rho_remaining == Decimal("0.05")
    assert line.period_start == q2.replace(second=0)
    detail = ledger.budget_detail(home=n.home, agreement_id="mou-1", settings=n.settings, now=q2)
    assert [(p.key, p.rho) for p in detail.by_period] == [
        ("2026-Q1", Decimal("0.2")),
        ("2026-Q2", Decimal("0.2")),
    ]
    assert {c.requested_by for c in detail.charges} == {"analyst"}
    assert [(o.key, o.queries) for o in detail.by_organisation] == [("NSO Nepal", 2)]
    assert [(c.dataset, c.measure, c.group_by) for c in detail.charges] == [
        ("survey", "count", ()),
        ("survey", "count", ()),
    ]


def test_calendar_year_rolls_over_and_expiry_with_a_fixed_clock(
    tmp_path: Path, db_url: str
) -> None:
    n = make_node(
        tmp_path / "n",
        db_url,
        budget_period="calendar_year",
        rho_budget=0.1,
        rho_per_query_max=0.1,
        valid_from=datetime(2026, 6, 1, tzinfo=UTC),
        valid_until=datetime(2027, 6, 1, tzinfo=UTC),
    )
    _ask(n, datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    with pytest.raises(Exception) as exhausted:
        _ask(n, datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC))
    assert getattr(exhausted.value, "code", None) == "budget_exhausted"
    _ask(n, datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC))
    with pytest.raises(Exception) as expired:
        _ask(n, datetime(2027, 6, 1, 0, 0, 1, tzinfo=UTC))
    assert getattr(expired.value, "code", None) == "agreement_expired"
    with pytest.raises(Exception) as early:
        _ask(n, datetime(2026, 5, 31, 23, 0, tzinfo=UTC))
    assert getattr(early.value, "code", None) == "agreement_not_yet_valid"


def test_the_last_instant_before_valid_until_is_in_force_and_valid_until_is_not(
    tmp_path: Path, db_url: str
) -> None:
    """The boundary the steward signed: "through 31 May 2027", i.e. until just before
    1 June 2027 00:00 UTC (`contracts.agreement_rules.validity_at`, as at the hub)."""
    until = datetime(2027, 6, 1, tzinfo=UTC)
    n = make_node(
        tmp_path / "n", db_url, valid_from=datetime(2026, 6, 1, tzinfo=UTC), valid_until=until
    )
    assert validity_days(n.terms)[1] == date(2027, 5, 31)
    _ask(n, until - timedelta(microseconds=1))
    with pytest.raises(Exception) as expired:
        _ask(n, until)
    assert getattr(expired.value, "code", None) == "agreement_expired"


def test_amendment_keeps_the_spent_budget(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, rho_budget=0.5, rho_per_query_max=0.4)
    now = datetime.now(UTC)
    _ask(n, now, rho=0.4)
    v1_digest = signing.digest(n.terms)
    v2 = terms(
        n.identity.node_id,
        version=2,
        amends_digest=v1_digest,
        rho_budget=0.6,
        rho_per_query_max=0.4,
    )
    agreements.sign(home=n.home, agreement=hub_signed(v2, n.hub_key), settings=n.settings)
    v2_digest = signing.digest(v2)
    # v1 stays honoured until the hub uses v2 (it moves on only once every party signed).
    _ask(n, now, rho=0.05)
    with pytest.raises(Exception) as exhausted:
        _ask(n, now, rho=0.3, version=2, digest=v2_digest)
    assert getattr(exhausted.value, "code", None) == "budget_exhausted"
    _ask(n, now, rho=0.15, version=2, digest=v2_digest)
    with pytest.raises(Exception) as old:
        _ask(n, now, rho=0.01)
    assert getattr(old.value, "code", None) == "agreement_superseded"
    detail = ledger.budget_detail(home=n.home, agreement_id="mou-1", settings=n.settings)
    # Exact: 0.4 + 0.05 is 0.45 here, not 0.45000000000000007, and 0.6 is spent to the last digit.
    assert [(v.key, v.rho) for v in detail.by_version] == [
        ("v1", Decimal("0.45")),
        ("v2", Decimal("0.15")),
    ]
    assert detail.line.version == 2
    assert (detail.line.rho_spent, detail.line.rho_remaining) == (Decimal("0.6"), 0)
    # Both versions stay readable at the node.
    assert [
        r.version for r in agreements.show(home=n.home, agreement_id="mou-1", settings=n.settings)
    ] == [1, 2]


def test_signing_checks_refuse_and_change_nothing(node: Node) -> None:
    before = agreements.list_agreements(home=node.home, settings=node.settings)
    base = terms(node.identity.node_id, agreement_id="mou-2")
    bad: list[tuple[Any, type[Exception]]] = [
        (hub_signed(base, signing.generate_key()), AgreementInvalid),  # not the pinned hub
        (
            hub_signed(base, node.hub_key).model_copy(update={"digest": "0" * 64}),
            AgreementInvalid,
        ),
        (
            hub_signed(base, node.hub_key).model_copy(
                update={"terms": base.model_copy(update={"rho_budget": 99.0})}
            ),
            AgreementInvalid,
        ),  # terms altered after the hub signed
        (hub_signed(terms("other-node", agreement_id="mou-2"), node.hub_key), AgreementInvalid),
        (
            hub_signed(
                terms(node.identity.node_id, agreement_id="mou-2", dims=("sex", "caste")),
                node.hub_key,
            ),
            TermNotInContract,
        ),
        (
            hub_signed(
                terms(node.identity.node_id, agreement_id="mou-2", columns=("income",)),
                node.hub_key,
            ),
            TermNotInContract,
        ),
        (
            hub_signed(
                terms(node.identity.node_id, version=2, amends_digest="a" * 64), node.hub_key
            ),
            AgreementInvalid,
        ),
    ]
    for agreement, error in bad:
        with pytest.raises(error):
            agreements.sign(home=node.home, agreement=agreement, settings=node.settings)
    assert agreements.list_agreements(home=node.home, settings=node.settings) == before


def test_preview_gives_the_rules_in_plain_language(node: Node) -> None:
    agreement = hub_signed(
        terms(node.identity.node_id, agreement_id="mou-3", budget_period="calendar_year"),
        node.hub_key,
    )
    preview = agreements.preview(home=node.home, agreement=agreement, settings=node.settings)
    assert not preview.already_signed
    for text in (
        "PARTIES",
        "Test MoU",
        "Analysts of: NSO Nepal.",
        "at most rho = 5 for each calendar year",
        "At most 3 break-down columns in one question.",
    ):
        assert text in preview.summary, text
