"""The served node's CPU per query, asked directly by a plain client: no hub in the way.

`sauti node serve` in its own process over a node home holding the demo survey (as
bench/query_overhead.py sets it up, with a budget large enough for every query), and one
keep-alive httpx client here that posts hub-signed count-by-group-x-sex requests, each signed
before its timing starts. Per query: the node process's CPU (every thread, from
/proc/<pid>/task/*/schedstat: nanoseconds, not 10 ms ticks) and the wall time of the
exchange. With no hub process sharing the two cores, this is the steadiest figure of the
node's fixed cost (docs/architecture.md, issue #25's sixth round). Not a target bench: a
profiling aid, not in `make bench`.

    PYTHONDONTWRITEBYTECODE= .venv/bin/python bench/node_direct.py

Environment: BENCH_NODE_ROWS (default 100000), BENCH_REPETITIONS (default 300).
"""

import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from query_overhead import served_node

from contracts import signing
from contracts.v1 import (
    AgreementSignature,
    QueryRequest,
    QuerySpec,
    SignaturePayload,
    SignedAgreement,
)
from node import home as node_home
from node.agreements import service as agreements
from node.datasets import service as node_datasets
from sauti.demo.data import demo_nodes
from sauti.demo.run import demo_terms

ROWS = int(os.environ.get("BENCH_NODE_ROWS", "100000"))
REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "300"))
WARMUP = 10
HUB = "bench-hub"
RHO = 0.0005


def cpu_ns(pid: int) -> int:
    """CPU time of every live thread of `pid` so far, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except OSError:  # a thread that ended meanwhile
            continue
    return total


def main() -> None:
    node = demo_nodes(rows=ROWS)[0]
    hub_key = signing.generate_key()
    with tempfile.TemporaryDirectory(prefix="sauti-bench-node-") as tmp:
        home = Path(tmp) / "node"
        node_home.init_home(
            home, name=node.organisation, country=node.country, node_id=node.node_id
        )
        node_home.pin_hub(home, hub_id=HUB, public_jwk=signing.public_jwk(hub_key))
        node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
        terms = demo_terms(nodes=[node], hub_id=HUB).model_copy(update={"rho_budget": 1000.0})
        digest = signing.digest(terms)
        payload = SignaturePayload(
            agreement_id=terms.agreement_id,
            version=terms.version,
            digest=digest,
            signer=HUB,
            signed_at=datetime.now(UTC),
        )
        signature = AgreementSignature(
            signer=HUB, kid=signing.key_id(hub_key), jws=signing.sign(payload, hub_key)
        )
        agreements.sign(
            home=home,
            agreement=SignedAgreement(terms=terms, digest=digest, signatures=(signature,)),
        )
        spec = QuerySpec(
            agreement_id=terms.agreement_id,
            dataset=node.contract.name,
            measure="count",
            group_by=("group", "sex"),
            rho=RHO,
        )

        def body() -> bytes:
            now = datetime.now(UTC)
            request = QueryRequest(
                query_id=uuid.uuid4(),
                hub_id=HUB,
                node_id=node.node_id,
                agreement_id=terms.agreement_id,
                agreement_version=terms.version,
                agreement_digest=digest,
                spec=spec,
                rho=RHO,
                issued_at=now,
                expires_at=now + timedelta(minutes=10),
                nonce=uuid.uuid4().hex,
                analyst="bench",
                analyst_organisation=terms.analyst_organisations[0],
            )
            return b'{"jws":"' + signing.sign(request, hub_key).encode() + b'"}'

        walls: list[float] = []
        cpu = 0
        with served_node(home) as (url, pid), httpx.Client(base_url=url, timeout=60) as client:
            for i in range(WARMUP + REPETITIONS):
                content = body()
                before = cpu_ns(pid)
                start = time.perf_counter()
                answer = client.post(
                    "/v1/queries", content=content, headers={"content-type": "application/json"}
                )
                wall = time.perf_counter() - start
                if answer.status_code != 200:
                    raise RuntimeError(f"the node refused: {answer.text[:300]}")
                time.sleep(0.002)  # polars' threads finish their part before the next read
                if i >= WARMUP:
                    cpu += cpu_ns(pid) - before
                    walls.append(wall)
    print(
        f"node asked directly, {ROWS:,} rows, {REPETITIONS} queries: node CPU "
        f"{cpu / REPETITIONS / 1e6:.2f} ms per query, wall p50 "
        f"{statistics.median(walls) * 1000:.2f} ms (load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
