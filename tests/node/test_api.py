"""The node over HTTP: happy paths, idempotency and every refusal, with what they charge."""

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contracts import signing
from contracts.v1 import DatasetRef, Filter, NodeInfo, Release, SignedAgreement
from node.agreements import service as agreements
from node.agreements.exceptions import AgreementInvalid
from node.ledger.service import budget_report
from tests.node.conftest import HUB_ID, Node, hub_signed, make_node, terms


def release_of(node: Node, response) -> Release:
    assert response.status_code == 200, response.text
    node_key = signing.load_public_key(node.identity.public_jwk)
    return signing.verify_model(response.json()["jws"], node_key, Release)


def spent(node: Node) -> Decimal:
    return budget_report(home=node.home, settings=node.settings)[0].rho_spent


def refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert set(response.json()) == {"error"}


def test_info(node: Node) -> None:
    info = NodeInfo.model_validate(node.client.get("/v1/info").json())
    assert info.node_id == node.identity.node_id
    assert [d.contract.name for d in info.datasets] == ["survey"]


def test_count_and_share_happy_path(node: Node) -> None:
    request = node.request(node.spec(group_by=("sex", "district")))
    release = release_of(node, node.post(request))
    assert release.query_id == request.query_id
    assert release.request_digest == signing.digest(request)
    assert len(release.cells) == 3 * 2
    assert release.noise_scale > 0
    assert release.rho == 0.1
    share = node.request(
        node.spec(
            measure="share",
            column="disability",
            value="yes",
            group_by=("sex",),
            filters=(Filter(column="district", levels=("north",)),),
        )
    )
    cells = release_of(node, node.post(share)).cells
    assert cells[0].status == "ok"
    assert 0 <= cells[0].estimate <= 1
    assert spent(node) == Decimal("0.2")


def test_retry_returns_same_release_and_charges_once(node: Node) -> None:
    request = node.request()
    first = node.post(request)
    second = node.post(request)
    assert first.json() == second.json()
    assert spent(node) == Decimal("0.1")
    other = node.request(query_id=request.query_id, rho=0.2, spec=node.spec(rho=0.2))
    refused(node.post(other), 409, "query_id_conflict")
    assert spent(node) == Decimal("0.1")


def test_forged_unsigned_and_malformed(node: Node) -> None:
    refused(node.post(node.request(), key=signing.generate_key()), 401, "signature_invalid")
    refused(node.client.post("/v1/queries", json={}), 401, "unsigned")
    refused(node.client.post("/v1/queries", content=b"not json"), 401, "unsigned")
    refused(node.client.post("/v1/queries", json={"jws": "garbage-not-a-jws"}), 401, "unsigned")
    # Right key id in the header, but the signature is over other bytes.
    token = signing.sign(node.request(), node.hub_key)
    head, _, sig = token.split(".")
    forged = signing.sign(node.request(), node.hub_key).split(".")[1]
    refused(
        node.client.post("/v1/queries", json={"jws": f"{head}.{forged}.{sig}"}),
        401,
        "signature_invalid",
    )
    assert spent(node) == 0


def test_expiry_and_addressing(node: Node) -> None:
    now = datetime.now(UTC)
    refused(node.post(node.request(expires_at=now - timedelta(hours=1))), 401, "request_expired")
    refused(node.post(node.request(issued_at=now + timedelta(hours=1))), 401, "request_expired")
    refused(node.post(node.request(issued_at=now - timedelta(days=2))), 401, "request_expired")
    refused(node.post(node.request(node_id="someone-else")), 403, "wrong_node")
    refused(node.post(node.request(hub_id="other-hub")), 401, "signature_invalid")
    assert spent(node) == 0


def test_agreement_checks(node: Node) -> None:
    refused(node.post(node.request(agreement_digest="0" * 64)), 403, "agreement_unknown")
    refused(node.post(node.request(agreement_version=2)), 403, "agreement_unknown")
    refused(node.post(node.request(node.spec(dataset="other"))), 403, "dataset_not_in_agreement")
    agreements.suspend(home=node.home, agreement_id="mou-1", settings=node.settings)
    refused(node.post(node.request()), 403, "agreement_suspended")
    agreements.resume(home=node.home, agreement_id="mou-1", settings=node.settings)
    assert node.post(node.request()).status_code == 200
    agreements.revoke(home=node.home, agreement_id="mou-1", settings=node.settings)
    refused(node.post(node.request()), 403, "agreement_revoked")
    assert spent(node) == Decimal("0.1")


def test_spec_checks(node: Node) -> None:
    cases = [
        (node.spec(measure="mean", column="age"), 403, "measure_not_allowed"),
        (node.spec(group_by=("nope",)), 422, "unknown_column"),
        (node.spec(filters=(Filter(column="sex", levels=("bogus",)),)), 422, "unknown_level"),
        (node.spec(group_by=("comment",)), 422, "column_not_queryable"),
        (node.spec(group_by=("age",)), 422, "dim_not_categorical"),
        (node.spec(measure="share", column="group", value="dalit"), 403, "column_not_allowed"),
        (node.spec(group_by=("sex", "district", "group", "disability")), 403, "too_many_dims"),
        (node.spec(rho=1.5), 403, "cost_over_cap"),
    ]
    for spec, status, code in cases:
        refused(node.post(node.request(spec)), status, code)
    assert spent(node) == 0


def test_mean_of_a_categorical_column_is_refused(tmp_path, db_url) -> None:
    # Every measure is built (tests/node/test_privacy_api.py); a wrong column type is not.
    n = make_node(tmp_path / "n", db_url, measures=("count", "mean"))
    refused(n.post(n.request(n.spec(measure="mean", column="sex"))), 422, "column_not_numeric")
    assert spent(n) == 0


def test_dim_not_allowed_and_unknown_dataset(tmp_path, db_url) -> None:
    n = make_node(tmp_path / "n", db_url, dims=("sex",))
    refused(n.post(n.request(n.spec(group_by=("district",)))), 403, "dim_not_allowed")
    # An agreement naming a dataset the node lacks cannot be signed...
    other = terms(
        n.identity.node_id,
        agreement_id="mou-2",
        datasets=(
            DatasetRef(name="survey", contract_version=1),
            DatasetRef(name="missing", contract_version=1),
        ),
    )
    with pytest.raises(AgreementInvalid):
        agreements.sign(home=n.home, agreement=hub_signed(other, n.hub_key), settings=n.settings)
    # ...so unknown_dataset is what a node answers once the data is gone.
    shutil.rmtree(n.home / "datasets" / "survey")
    refused(n.post(n.request()), 422, "unknown_dataset")


def test_budget_exhausted_charges_nothing(tmp_path, db_url) -> None:
    n = make_node(tmp_path / "n", db_url, rho_budget=0.25, rho_per_query_max=0.1)
    assert n.post(n.request()).status_code == 200
    assert n.post(n.request()).status_code == 200
    refused(n.post(n.request()), 403, "budget_exhausted")
    line = budget_report(home=n.home, settings=n.settings)[0]
    assert line.rho_spent == Decimal("0.2")
    assert line.queries == 2
    assert line.rho_remaining == Decimal("0.05")
    assert n.post(n.request(n.spec(rho=0.05))).status_code == 200


def test_agreement_signing_checks(node: Node) -> None:
    t = terms(node.identity.node_id, agreement_id="mou-3")
    good = hub_signed(t, node.hub_key)
    signature = agreements.sign(home=node.home, agreement=good, settings=node.settings)
    node_key = signing.load_public_key(node.identity.public_jwk)
    payload = signing.verify(signature.jws, node_key)
    assert b'"signer":"' + node.identity.node_id.encode() in payload
    # Idempotent for the same text.
    assert agreements.sign(home=node.home, agreement=good, settings=node.settings) == signature
    bad_digest = SignedAgreement(terms=t, digest="f" * 64, signatures=good.signatures)
    forged = hub_signed(terms(node.identity.node_id, agreement_id="mou-4"), signing.generate_key())
    not_party = hub_signed(terms("other-node", agreement_id="mou-5"), node.hub_key)
    for agreement in (bad_digest, forged, not_party):
        with pytest.raises(AgreementInvalid):
            agreements.sign(home=node.home, agreement=agreement, settings=node.settings)
    ids = [
        r.agreement_id for r in agreements.list_agreements(home=node.home, settings=node.settings)
    ]
    assert ids == ["mou-1", "mou-3"]
    assert t.hub_id == HUB_ID


def test_expired_agreement(tmp_path, db_url) -> None:
    past = datetime.now(UTC) - timedelta(days=10)
    n = make_node(tmp_path / "n", db_url, valid_from=past, valid_until=past + timedelta(days=1))
    refused(n.post(n.request()), 403, "agreement_expired")


def test_unknown_route(node: Node) -> None:
    response = node.client.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
