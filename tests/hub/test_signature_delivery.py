"""A steward's signature travels from the node to the hub, and one budget figure everywhere.

Real node apps behind an in-process hub: signing at the node hands the signature to the hub
at once (node-signed, fresh), the hub puts the version in force, and the node shows where
its signature is. Bad deliveries (a key the hub does not pin, a version it does not hold, a
replay, another node's signature) are refused with a code, logged, and change nothing. A
query every node refuses costs nothing, at the hub or at any node.
"""

import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from hub_support import DATASET, Hub, make_terms
from real_nodes_support import (
    SEXES,
    NodeData,
    RealNodes,
    hub_transport,
    lnob_contract,
    start_real_nodes,
)
from sqlalchemy import create_engine, text

from contracts import signing
from contracts.v1 import (
    AgreementSignature,
    Column,
    Level,
    SignatureDelivery,
    SignaturePayload,
    Signed,
    SignedAgreement,
)
from hub.home import HubIdentity
from node import home as node_home
from node.agreements import service as node_agreements
from node.db import dispose_engines
from node.ledger import service as ledger
from node.settings import NodeSettings

DELIVER = "/v1/agreements/signatures/deliver"


def _frame(rows: int, seed: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "respondent": [f"r{seed}-{i}" for i in range(rows)],
            "sex": [SEXES[(i * seed) % 2] for i in range(rows)],
            "violence_12m": [("yes", "no")[i % 2] for i in range(rows)],
        }
    )


@pytest.fixture
def federation(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> Iterator[RealNodes]:
    contract = lnob_contract(
        Column(
            name="violence_12m",
            type="categorical",
            title="Violence in the last 12 months",
            levels=(Level(code="yes"), Level(code="no")),
        )
    )
    nodes = {
        "ke-cso": NodeData("404", contract, _frame(200, 1)),
        "np-cso": NodeData("524", contract, _frame(150, 3)),
    }
    real = start_real_nodes(tmp_path, hub_home, make_hub, nodes, hub_url="http://hub.test")
    yield real
    dispose_engines()


def _terms(real: RealNodes) -> Any:
    pairs = [(n, node_home.load_identity(h).country) for n, h in real.homes.items()]
    return make_terms(
        pairs, columns=("violence_12m",), dims=("sex",), min_cell_size=0, rho_budget=5.0
    )


def _sign_everywhere(real: RealNodes, agreement: SignedAgreement) -> None:
    transport = hub_transport(real.hub)
    for home in real.homes.values():
        outcome = node_agreements.sign_and_deliver(
            home=home, agreement=agreement, settings=NodeSettings(home=home), transport=transport
        )
        assert (outcome.report.sent, outcome.report.pending) == (1, 0)


def _hub_rows(real: RealNodes) -> tuple[int, int, int]:
    """Signatures, audit entries and seen node nonces at the hub (to show nothing changed)."""
    engine = create_engine(real.hub.settings.effective_database_url)
    try:
        with engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("agreement_signatures", "audit_log", "node_nonces")
            )
    finally:
        engine.dispose()


def test_signing_at_the_node_puts_the_agreement_in_force_at_the_hub(
    federation: RealNodes,
) -> None:
    real = federation
    terms = _terms(real)
    body = real.hub.propose(terms)
    assert body["status"] == "proposed"
    agreement = SignedAgreement.model_validate(body["agreement"])
    first, second = real.homes.values()

    # The first steward signs: the hub has it at once, and waits for the other party.
    outcome = node_agreements.sign_and_deliver(
        home=first,
        agreement=agreement,
        settings=NodeSettings(home=first),
        transport=hub_transport(real.hub),
    )
    assert outcome.report.sent == 1
    (record,) = node_agreements.list_agreements(home=first)
    assert record.hub_received_at is not None
    assert record.hub_status == "proposed"
    # The second node cannot reach the hub: signed and honoured there, the hub not told yet.
    down = httpx.MockTransport(lambda request: httpx.Response(503))
    waiting = node_agreements.sign_and_deliver(
        home=second, agreement=agreement, settings=NodeSettings(home=second), transport=down
    )
    assert (waiting.report.sent, waiting.report.pending) == (0, 1)
    (record,) = node_agreements.list_agreements(home=second)
    assert (record.hub_received_at, record.hub_answer) == (None, None)
    sec = real.hub.headers("secretariat")
    read = real.hub.client.get(f"/v1/agreements/{terms.agreement_id}", headers=sec).json()
    assert read["status"] == "proposed"
    assert read["missing_signers"] == ["np-cso"]

    # Retried (what the node's retry loop and `agreements report` do) once the hub is back.
    report = node_agreements.report_all(
        home=second, settings=NodeSettings(home=second), transport=hub_transport(real.hub)
    )
    assert (report.signatures.sent, report.signatures.pending) == (1, 0)
    (record,) = node_agreements.list_agreements(home=second)
    assert record.hub_status == "active"
    read = real.hub.client.get(f"/v1/agreements/{terms.agreement_id}", headers=sec).json()
    assert read["status"] == "active"

    # Idempotent: the same signature delivered again (fresh nonce) changes nothing.
    before = _hub_rows(real)
    again = real.hub.client.post(DELIVER, json=_delivery(second, record.signature))
    assert again.status_code == 200, again.text
    after = _hub_rows(real)
    assert after[:2] == before[:2]  # no new signature, no new audit entry (only the nonce)
    # And an analyst's question under it completes.
    asked = real.hub.client.post(
        "/v1/queries",
        json={
            "agreement_id": terms.agreement_id,
            "dataset": DATASET,
            "measure": "count",
            "group_by": ["sex"],
            "rho": 0.2,
        },
        headers=real.hub.headers("analyst"),
    )
    assert asked.json()["status"] == "complete", asked.text


def _delivery(
    home: Path,
    signature: AgreementSignature,
    *,
    key: Any = None,
    node_id: str | None = None,
) -> dict[str, Any]:
    identity = node_home.load_identity(home)
    assert identity.hub_id is not None
    delivery = SignatureDelivery(
        hub_id=identity.hub_id,
        node_id=node_id or identity.node_id,
        signature=signature,
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    return Signed(jws=signing.sign(delivery, key or node_home.load_key(home))).model_dump(
        mode="json"
    )


def test_bad_signatures_are_refused_logged_and_change_nothing(
    federation: RealNodes, caplog: pytest.LogCaptureFixture
) -> None:
    real = federation
    terms = _terms(real)
    agreement = SignedAgreement.model_validate(real.hub.propose(terms)["agreement"])
    first, second = real.homes.values()
    signature = node_agreements.sign(
        home=first, agreement=agreement, settings=NodeSettings(home=first)
    )
    other = node_agreements.sign(
        home=second, agreement=agreement, settings=NodeSettings(home=second)
    )
    # A signature over version 9, which the hub does not hold, made with the node's own key.
    payload = signing.unverified_payload(signature.jws)
    unknown_version = AgreementSignature(
        signer=signature.signer,
        kid=signature.kid,
        jws=signing.sign(
            SignaturePayload.model_validate_json(payload).model_copy(update={"version": 9}),
            node_home.load_key(first),
        ),
    )
    replayed = _delivery(first, signature)
    cases = [
        # Delivered under a key the hub does not pin (anyone's).
        (_delivery(first, signature, key=signing.generate_key()), 401, "node_signature_invalid"),
        (_delivery(first, unknown_version), 404, "agreement_not_found"),
        # Another node's signature, delivered by this one.
        (_delivery(first, other), 422, "signer_mismatch"),
    ]
    before = _hub_rows(real)
    caplog.set_level(logging.WARNING, logger="hub.security")
    for body, status, code in cases:
        answer = real.hub.client.post(DELIVER, json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
        assert code in caplog.text
    assert _hub_rows(real) == before
    sec = real.hub.headers("secretariat")
    read = real.hub.client.get(f"/v1/agreements/{terms.agreement_id}", headers=sec).json()
    assert read["missing_signers"] == ["ke-cso", "np-cso"]

    # The genuine delivery is taken once; the very same message again is a replay.
    assert real.hub.client.post(DELIVER, json=replayed).status_code == 200
    taken = _hub_rows(real)
    answer = real.hub.client.post(DELIVER, json=replayed)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "replayed")
    assert "replayed" in caplog.text
    assert _hub_rows(real) == taken

    # The node keeps the hub's refusal and does not retry it; its page says why.
    foreign = httpx.MockTransport(
        lambda request: httpx.Response(
            404, json={"error": {"code": "agreement_not_found", "message": "no"}}
        )
    )
    report = node_agreements.deliver_signatures(
        home=second, settings=NodeSettings(home=second), transport=foreign
    )
    assert (report.refused, report.pending) == (1, 0)
    (record,) = node_agreements.list_agreements(home=second)
    assert record.hub_answer == "agreement_not_found"
    assert node_agreements.pending_deliveries(home=second) == 0


def test_a_query_every_node_refuses_costs_nothing_anywhere(federation: RealNodes) -> None:
    real = federation
    terms = _terms(real)
    agreement = SignedAgreement.model_validate(real.hub.propose(terms)["agreement"])
    _sign_everywhere(real, agreement)
    analyst, sec = real.hub.headers("analyst"), real.hub.headers("secretariat")
    spec = {"agreement_id": terms.agreement_id, "dataset": DATASET, "measure": "count"}
    answered = real.hub.client.post("/v1/queries", json={**spec, "rho": 0.45}, headers=analyst)
    assert answered.json()["status"] == "complete"

    def figures() -> dict[str, Any]:
        read = real.hub.client.get(f"/v1/agreements/{terms.agreement_id}", headers=sec).json()
        return {
            "hub": read["rho_spent_at_hub"],
            "hub_by_node": read["rho_spent_by_node"],
            "nodes": {
                node_id: str(ledger.budget_report(home=home)[0].rho_spent)
                for node_id, home in real.homes.items()
            },
        }

    before = figures()
    assert before == {
        "hub": "0.45",
        "hub_by_node": {"ke-cso": "0.45", "np-cso": "0.45"},
        "nodes": {"ke-cso": "0.45", "np-cso": "0.45"},
    }
    # Every steward suspends at their node without telling the hub: the hub still asks,
    # every node refuses.
    for home in real.homes.values():
        node_agreements.suspend(home=home, agreement_id=terms.agreement_id)
    refused = real.hub.client.post("/v1/queries", json={**spec, "rho": 0.06}, headers=analyst)
    assert refused.json()["status"] == "failed", refused.text
    assert {n["outcome"] for n in refused.json()["nodes"]} == {"refused"}
    assert figures() == before
