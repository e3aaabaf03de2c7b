"""Benchmark: node query latency with vs without the audit append, and verifying 1M entries."""

import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import insert

from contracts import signing
from contracts.v1 import (
    AgreementSignature,
    AgreementTerms,
    Column,
    DatasetContract,
    DatasetRef,
    Level,
    Party,
    PrivacyUnit,
    QueryRequest,
    QuerySpec,
    SignaturePayload,
    Signed,
    SignedAgreement,
)
from contracts.v1.audit import GENESIS, at_text, entry_hash
from node.agreements import service as agreements
from node.audit import service as audit
from node.audit.models import AuditHead, AuditRow
from node.datasets import service as datasets
from node.db import dispose_engines, transaction
from node.exceptions import SchemaOutOfDate
from node.home import init_home, pin_hub
from node.queries.service import handle_query
from node.settings import NodeSettings

HUB_ID = "bench-hub"
ROWS = 10_000
QUERIES = 100
CHAIN = 1_000_000
CHAIN_DB = Path(__file__).parent / ".data" / "audit_1m.sqlite"


def _node(home: Path) -> tuple[NodeSettings, Any, str]:
    identity = init_home(home, name="Bench CSO", country="524", node_id="bench")
    hub_key = signing.generate_key()
    pin_hub(home, hub_id=HUB_ID, public_jwk=signing.public_jwk(hub_key))
    settings = NodeSettings(home=home)
    contract = DatasetContract(
        name="survey",
        version=1,
        title="Bench survey",
        columns=(
            Column(name="sex", type="categorical", levels=(Level(code="f"), Level(code="m"))),
            Column(name="age", type="integer", role="measure", lower=0, upper=120),
        ),
        privacy=PrivacyUnit(max_contributions=1),
    )
    frame = pl.DataFrame({"sex": ["f", "m"] * (ROWS // 2), "age": [30] * ROWS})
    datasets.import_frame(home=home, contract=contract, frame=frame, settings=settings)
    now = datetime.now(UTC)
    terms = AgreementTerms(
        agreement_id="mou",
        version=1,
        title="Bench",
        purpose="bench",
        hub_id=HUB_ID,
        parties=(
            Party(organisation="Sec", role="secretariat"),
            Party(organisation="CSO", role="cso", country="524", node_id=identity.node_id),
        ),
        datasets=(DatasetRef(name="survey", contract_version=1),),
        measures=("count",),
        columns=("sex",),
        dims=("sex",),
        max_dims=1,
        min_cell_size=0,
        rho_per_query_max=1.0,
        rho_budget=1e9,
        analyst_organisations=("nso",),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
    )
    digest = signing.digest(terms)
    payload = SignaturePayload(
        agreement_id="mou", version=1, digest=digest, signer=HUB_ID, signed_at=now
    )
    signature = AgreementSignature(
        signer=HUB_ID, kid=signing.key_id(hub_key), jws=signing.sign(payload, hub_key)
    )
    agreements.sign(
        home=home,
        agreement=SignedAgreement(terms=terms, digest=digest, signatures=(signature,)),
        settings=settings,
    )
    return settings, hub_key, digest


def _request(node_id: str, hub_key: Any, digest: str) -> Signed:
    now = datetime.now(UTC)
    spec = QuerySpec(
        agreement_id="mou", dataset="survey", measure="count", group_by=("sex",), rho=0.01
    )
    request = QueryRequest(
        query_id=uuid.uuid4(),
        hub_id=HUB_ID,
        node_id=node_id,
        agreement_id="mou",
        agreement_version=1,
        agreement_digest=digest,
        spec=spec,
        rho=spec.rho,
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        nonce=uuid.uuid4().hex,
        analyst_organisation="nso",
    )
    return Signed(jws=signing.sign(request, hub_key))


@contextmanager
def _without_audit() -> Iterator[None]:
    original, original_many = audit.append, audit.append_many
    audit.append = lambda *_a, **_k: 0
    audit.append_many = lambda *_a, **_k: []
    try:
        yield
    finally:
        audit.append, audit.append_many = original, original_many


def query_latency() -> tuple[float, float]:
    """Median ms per query, alternating with/without the audit append so drift hits both."""
    with tempfile.TemporaryDirectory() as tmp:
        settings, hub_key, digest = _node(Path(tmp) / "node")
        for _ in range(5):  # warm up caches, OpenDP, the SQLite file
            handle_query(settings=settings, signed=_request("bench", hub_key, digest))
        timings: dict[bool, list[float]] = {True: [], False: []}
        for i in range(2 * QUERIES):
            with_audit = i % 2 == 0
            signed = _request("bench", hub_key, digest)
            start = time.perf_counter()
            if with_audit:
                handle_query(settings=settings, signed=signed)
            else:
                with _without_audit():
                    handle_query(settings=settings, signed=signed)
            timings[with_audit].append((time.perf_counter() - start) * 1000)
        dispose_engines()
    return statistics.median(timings[True]), statistics.median(timings[False])


def _build_chain(url: str) -> None:
    """A node chain of CHAIN realistic entries, written once and kept in bench/.data."""
    prev = GENESIS
    now = datetime.now(UTC)
    with transaction(url) as session:
        batch: list[dict[str, Any]] = []
        for seq in range(1, CHAIN + 1):
            at = datetime.fromisoformat(at_text(now + timedelta(microseconds=seq)))
            details = {
                "query_id": str(uuid.UUID(int=seq)),
                "agreement_id": "mou",
                "code": "accepted",
            }
            digest = entry_hash(
                seq=seq,
                at=at,
                actor="hub",
                action="decision",
                object=f"query:{uuid.UUID(int=seq)}",
                details=details,
                prev_hash=prev,
            )
            batch.append(
                {
                    "seq": seq,
                    "at": at_text(at),
                    "actor": "hub",
                    "action": "decision",
                    "object": f"query:{uuid.UUID(int=seq)}",
                    "details": json.dumps(details, sort_keys=True, separators=(",", ":")),
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
            if len(batch) == 50_000:
                session.execute(insert(AuditRow), batch)
                batch = []
        if batch:
            session.execute(insert(AuditRow), batch)
        session.add(AuditHead(id=1, seq=CHAIN, hash=prev))


def _current_schema(url: str) -> bool:
    """False if the cached chain was written before migrations existed (it would be refused)."""
    try:
        with transaction(url):
            return True
    except SchemaOutOfDate:
        dispose_engines()
        return False


def verification_seconds() -> float:
    url = f"sqlite:///{CHAIN_DB}"
    if CHAIN_DB.exists() and not _current_schema(url):
        print(f"{CHAIN_DB} predates the schema's migration history: rebuilding it", flush=True)
        CHAIN_DB.unlink()
    if not CHAIN_DB.exists():
        CHAIN_DB.parent.mkdir(parents=True, exist_ok=True)
        print(f"building a {CHAIN:,}-entry chain in {CHAIN_DB} (once) ...", flush=True)
        _build_chain(url)
    with transaction(url) as session:
        head = session.get(AuditHead, 1)
        if head is None or head.seq != CHAIN:
            raise SystemExit(f"stale benchmark chain: delete {CHAIN_DB}")
    start = time.perf_counter()
    bad = audit.verify_chain(database_url=url)
    elapsed = time.perf_counter() - start
    assert bad is None
    dispose_engines()
    return elapsed


def main() -> None:
    with_ms, without_ms = query_latency()
    print(f"node query (count by sex, {ROWS:,} rows), median of {QUERIES} each, interleaved:")
    print(f"  with audit append:    {with_ms:8.2f} ms")
    print(f"  without audit append: {without_ms:8.2f} ms")
    print(f"  ratio with / without: {with_ms / without_ms:.3f}")
    seconds = verification_seconds()
    print(
        f"verify a {CHAIN:,}-entry chain from SQLite: {seconds:.1f} s "
        f"({seconds / CHAIN * 1e6:.1f} us per entry)"
    )


if __name__ == "__main__":
    main()
