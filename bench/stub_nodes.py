"""A fleet of stub nodes over real localhost HTTP, for benchmarks and scale tests of the hub.

Each stub node has its own Ed25519 key and its own origin (a localhost port), as each node
of a deployment is its own machine; the fleet runs in one or more separate processes
(HTTP/1.1 on asyncio protocols and httptools, one listening socket per node), so the CPU of
the process that starts it is the hub's alone. A stub answers `POST /v1/queries` after
`latency` seconds (an asyncio sleep: 1,000 concurrent requests cost nothing while they
wait) with a release signed by its own key and bound to that very request (query id, node
id, request digest), so the hub's checks
run for real; it serves its signed public contracts at `GET /v1/contracts`.

Releases: a stub made from a real node home (`StubNode.home`) answers its first request
through the real node app (its DP engine, ledger and data) and then re-signs that release's
cells for every later request (bench/federation.py); any other stub answers `count` queries
with cells over its contract's levels (noise scale from the request's rho) and refuses other
measures with a node-style 422. A request the hub did not sign is refused (403).

Interface (the parent process: a benchmark or a test; `children_cpu_seconds()` reads what the
fleet's processes have used):

    nodes = stub_nodes(1000)                      # keys and demo contracts, made here
    with fleet(nodes, hub_jwk=identity.public_jwk, work=tmp, latency=0.1) as urls:
        # urls: node id -> base URL ("http://127.0.0.1:PORT")
        registration(node, urls[node.node_id])    # the body of the hub's POST /v1/nodes
        agreement_signature(node, signed)         # a node's AgreementSignature of a version
    ...

`fleet(..., processes=P)` spreads the nodes over P processes; `faults={node_id: kind}` makes
a node misbehave (`forged`: signed with another key, `other_query`: answers another query
id, `oversized`: a body over the hub's limit, `silent`: never answers). Run directly
(`python bench/stub_nodes.py --serve CONFIG`) it is one fleet process.
"""

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httptools
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey
from nacl.bindings import crypto_sign_BYTES, crypto_sign_open
from nacl.exceptions import CryptoError

from contracts import signing
from contracts.v1 import (
    AgreementSignature,
    Cell,
    DatasetContract,
    PublishedContracts,
    QueryRequest,
    Release,
    Signed,
    SignedAgreement,
)
from contracts.v1.agreement import SignaturePayload
from contracts.v1.dataset import DatasetInfo
from contracts.v1.release import Component

JSON_HEADERS = {"content-type": "application/json"}
FAULTS = ("forged", "other_query", "oversized", "silent")
# A fleet process serves its nodes from one event loop: the hub's fan-out never waits on it
# for a connection (the kernel's accept queue holds what the loop has not taken yet).
BACKLOG = 4096


@dataclass(frozen=True)
class StubNode:
    """One stub node as the parent knows it: its identity, key and public contracts."""

    node_id: str
    country: str
    private_jwk: dict[str, Any]
    contracts: tuple[DatasetContract, ...] = ()
    # A real node home: its key and first release are the real node's (see the module doc).
    home: str | None = None
    organisation: str = field(default="")

    @property
    def public_jwk(self) -> dict[str, Any]:
        return signing.public_jwk(OKPKey.import_key(self.private_jwk))


def stub_nodes(count: int, *, prefix: str = "stub") -> list[StubNode]:
    """`count` stub nodes with fresh keys, the demo countries' contracts in turn."""
    from sauti.demo.data import COUNTRIES, make_contract  # noqa: PLC0415 (bench-only import)

    contracts = [make_contract(c) for c in COUNTRIES]
    nodes = []
    for i in range(count):
        key = signing.generate_key()
        nodes.append(
            StubNode(
                node_id=f"{prefix}-{i:04d}",
                country=COUNTRIES[i % len(COUNTRIES)].country,
                private_jwk=dict(key.as_dict(private=True)),
                contracts=(contracts[i % len(contracts)],),
                organisation=f"CSO {prefix} {i}",
            )
        )
    return nodes


def home_node(home: Path, *, organisation: str, country: str) -> StubNode:
    """A stub of a real node home (its key; its first release from its real node app)."""
    from node import home as node_home  # noqa: PLC0415 (bench-only import)

    identity = node_home.load_identity(home)
    key = node_home.load_key(home)
    return StubNode(
        node_id=identity.node_id,
        country=country,
        private_jwk=dict(key.as_dict(private=True)),
        home=str(home),
        organisation=organisation,
    )


def parties(nodes: Sequence[StubNode], contract: DatasetContract) -> list[Any]:
    """The nodes as `sauti.demo.run.demo_terms` takes its parties (`DemoNode`s without data),
    all publishing `contract`."""
    import polars as pl  # noqa: PLC0415 (bench-only import)

    from sauti.demo.data import DemoNode  # noqa: PLC0415

    return [
        DemoNode(
            node_id=n.node_id,
            organisation=n.organisation or n.node_id,
            country=n.country,
            contract=contract,
            frame=pl.DataFrame(),
        )
        for n in nodes
    ]


def registration(node: StubNode, url: str) -> dict[str, Any]:
    """The body of the hub's `POST /v1/nodes` for this node (an admin enrolls it)."""
    return {
        "node_id": node.node_id,
        "name": node.organisation or node.node_id,
        "country": node.country,
        "url": url,
        "public_jwk": node.public_jwk,
    }


def agreement_signature(node: StubNode, agreement: SignedAgreement) -> AgreementSignature:
    """The node's signature of an agreement version (what `node agreements sign` returns)."""
    if node.home is not None:
        from node.agreements import service as node_agreements  # noqa: PLC0415

        return node_agreements.sign(home=Path(node.home), agreement=agreement)
    key = OKPKey.import_key(node.private_jwk)
    payload = SignaturePayload(
        agreement_id=agreement.terms.agreement_id,
        version=agreement.terms.version,
        digest=agreement.digest,
        signer=node.node_id,
        signed_at=datetime.now(UTC),
    )
    return AgreementSignature(
        signer=node.node_id, kid=signing.key_id(key), jws=signing.sign(payload, key)
    )


def store_signatures(
    database_url: str, agreement: SignedAgreement, nodes: Sequence[StubNode]
) -> None:
    """Every node's signature of `agreement`, written straight into the hub's database as
    `POST /v1/agreements/{id}/signatures` writes it after checking it. Only for setting up
    large fleets: that route answers with the whole agreement (every signature), so 1,000
    nodes signing one by one take minutes; tests/hub cover the route itself."""
    from hub.agreements.models import AgreementSignatureRow  # noqa: PLC0415 (bench-only)
    from hub.db import init_db, make_engine  # noqa: PLC0415

    engine = make_engine(database_url)
    with init_db(engine)() as session:
        for node in nodes:
            signature = agreement_signature(node, agreement)
            payload = SignaturePayload.model_validate_json(
                signing.unverified_payload(signature.jws)
            )
            session.add(
                AgreementSignatureRow(
                    agreement_id=agreement.terms.agreement_id,
                    version=agreement.terms.version,
                    signer=signature.signer,
                    kid=signature.kid,
                    jws=signature.jws,
                    signed_at=payload.signed_at,
                )
            )
        session.commit()
    engine.dispose()


# --- the fleet process --------------------------------------------------------------------


class Stub:
    """One node in a fleet process: checks the hub's signature, answers with a signed release."""

    def __init__(
        self, node: StubNode, *, hub_jwk: dict[str, Any], latency: float, fault: str | None
    ) -> None:
        self.node = node
        self.key = OKPKey.import_key(node.private_jwk)
        private = self.key.private_key
        assert isinstance(private, Ed25519PrivateKey)
        self.private = private
        self.protected = signing.sign_canonical(b"{}", self.key).split(".", 1)[0].encode()
        self.hub_key = signing.load_public_key(hub_jwk)
        self.latency = latency
        self.fault = fault
        self.real: httpx.AsyncBaseTransport | None = None
        if node.home is not None:
            from node.app import create_app  # noqa: PLC0415 (only for real-home stubs)
            from node.settings import NodeSettings  # noqa: PLC0415

            self.real = httpx.ASGITransport(app=create_app(NodeSettings(home=Path(node.home))))
        self.templates: dict[str, tuple[Release, signing.Template]] = {}

    async def query(self, body: bytes) -> tuple[int, bytes]:
        try:
            token = json.loads(body)["jws"]
            payload = signing.verify(token, self.hub_key)
        except Exception:  # a node refuses what its pinned hub did not sign
            return 403, _error("request_invalid", "not signed by the pinned hub")
        # A node validates the whole request; a stub reads what it answers with (the request
        # is the hub's own, verified above) and builds the model once per query shape.
        request = json.loads(payload)
        if not isinstance(request, dict) or request.get("node_id") != self.node.node_id:
            return 403, _error("request_invalid", "the request names another node")
        if self.fault == "silent":
            await asyncio.sleep(3600)
        if self.latency:
            await asyncio.sleep(self.latency)
        template = await self._template(request, payload, body)
        if template is None:
            return 422, _error("measure_not_supported", "a stub node answers counts only")
        release, canonical = template
        query_id = str(uuid.uuid4()) if self.fault == "other_query" else request["query_id"]
        bound = {
            "query_id": query_id,
            "request_digest": hashlib.sha256(payload).hexdigest(),
            "released_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        if self.fault == "forged":
            token = _forged(release.model_copy(update=bound), self.key)
        else:
            # Signed for this very request with the node's own key; the release's canonical
            # JSON is written once per query shape and only these three values change.
            token = self._sign(canonical.fill(bound))
        content = b'{"jws":"' + token.encode("ascii") + b'"}'
        if self.fault == "oversized":
            content = content[:-2] + b" " * 2_000_000 + content[-2:]
        return 200, content

    def _sign(self, payload: bytes) -> str:
        """`signing.sign_canonical(payload, self.key)`, byte for byte, with this key's
        protected header encoded once (signing's own cache holds 256 keys; a fleet process
        serves 500 and more, so it recomputed the key's thumbprint for most answers)."""
        signing_input = self.protected + b"." + _b64(payload)
        return (signing_input + b"." + _b64(self.private.sign(signing_input))).decode("ascii")

    async def _template(
        self, request: dict[str, Any], payload: bytes, body: bytes
    ) -> tuple[Release, signing.Template] | None:
        # The request is canonical JSON (sorted keys), so equal specs have equal reprs.
        shape = repr(request["spec"]) + repr(request["rho"])
        cached = self.templates.get(shape)
        if cached is not None:
            return cached
        if self.real is not None:
            response = await self.real.handle_async_request(
                httpx.Request("POST", "http://node/v1/queries", content=body, headers=JSON_HEADERS)
            )
            token = Signed.model_validate_json(await response.aread()).jws
            made: Release | None = Release.model_validate_json(signing.unverified_payload(token))
        else:
            made = synthetic_release(QueryRequest.model_validate_json(payload), self.node)
        if made is None:
            return None
        document = made.model_dump(mode="json")
        template = signing.Template(document, ("query_id", "request_digest", "released_at"))
        self.templates[shape] = (made, template)
        return made, template

    async def contracts(self) -> tuple[int, bytes]:
        if self.real is not None:
            response = await self.real.handle_async_request(
                httpx.Request("GET", "http://node/v1/contracts")
            )
            return response.status_code, await response.aread()
        published = PublishedContracts(
            node_id=self.node.node_id,
            issued_at=datetime.now(UTC),
            datasets=tuple(
                DatasetInfo(contract=c, contract_digest=signing.digest(c))
                for c in self.node.contracts
            ),
        )
        return 200, Signed(jws=signing.sign(published, self.key)).model_dump_json().encode()


def _forged(release: Release, key: OKPKey) -> str:
    """Signed by another key under the node's own key id: only the signature check tells."""
    token = signing.sign(release, signing.generate_key())
    _, payload, _ = token.split(".")
    header = {"alg": signing.ALGORITHM, "kid": signing.key_id(key)}
    protected = _b64(json.dumps(header, separators=(",", ":")).encode())
    signing_input = protected + b"." + payload.encode()
    other = signing.generate_key().private_key
    assert isinstance(other, Ed25519PrivateKey)
    return (signing_input + b"." + _b64(other.sign(signing_input))).decode()


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def synthetic_release(request: QueryRequest, node: StubNode) -> Release | None:
    """A count release over the node's contract levels (the request's group-by, filtered)."""
    spec = request.spec
    contract = next((c for c in node.contracts if c.name == spec.dataset), None)
    if spec.measure != "count" or contract is None:
        return None
    levels = {c.name: c.level_codes for c in contract.columns}
    wanted = {f.column: set(f.levels) for f in spec.filters}
    axes = [
        [code for code in levels.get(dim, ()) if dim not in wanted or code in wanted[dim]]
        for dim in spec.group_by
    ]
    scale = math.sqrt(1 / (2 * request.rho))  # discrete Gaussian, sensitivity 1: rho = 1/2s^2
    cells = []
    for i, key in enumerate(itertools.product(*axes)):
        estimate = float(40 + (i * 37) % 200)
        cells.append(
            Cell(
                key=tuple(key),
                status="ok",
                estimate=estimate,
                ci95_low=max(estimate - 1.96 * scale, 0.0),
                ci95_high=estimate + 1.96 * scale,
                variance=scale * scale,
            )
        )
    return Release(
        query_id=request.query_id,
        node_id=node.node_id,
        agreement_id=request.agreement_id,
        agreement_version=request.agreement_version,
        dataset=spec.dataset,
        contract_version=contract.version,
        measure="count",
        group_by=tuple(spec.group_by),
        mechanism="discrete_gaussian",
        rho=request.rho,
        noise_scale=scale,
        request_digest="",
        cells=tuple(cells),
        released_at=datetime.now(UTC),
        components=(
            Component(
                name="count",
                mechanism="discrete_gaussian",
                scale=scale,
                sensitivity=1.0,
                rho=request.rho,
            ),
        ),
    )


def _sodium_check(public: Any, signature: bytes, signed: bytes) -> bool:
    if len(signature) != crypto_sign_BYTES:
        return False
    try:
        crypto_sign_open(signature + signed, public.public_bytes_raw())
    except CryptoError:
        return False
    return True


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def serve(config_path: str) -> None:
    """One fleet process: a listening socket per node, one event loop for them all."""
    config = json.loads(Path(config_path).read_text())
    # The hub's request signatures checked with libsodium, as the hub checks releases: a
    # node on its own machine may use either; on the bench's shared cores the cheaper one.
    signing.use_ed25519_check(_sodium_check)
    faults: dict[str, str] = config.get("faults", {})
    by_port: dict[int, Stub] = {}
    sockets: list[socket.socket] = []
    for raw in config["nodes"]:
        node = StubNode(
            node_id=raw["node_id"],
            country=raw["country"],
            private_jwk=raw["private_jwk"],
            contracts=tuple(DatasetContract.model_validate(c) for c in raw["contracts"]),
            home=raw.get("home"),
        )
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(BACKLOG)
        sockets.append(listener)
        by_port[listener.getsockname()[1]] = Stub(
            node,
            hub_jwk=config["hub_jwk"],
            latency=config["latency"],
            fault=faults.get(node.node_id),
        )

    async def answer(stub: Stub, method: bytes, path: bytes, body: bytes) -> tuple[int, bytes]:
        route = (method, path)
        if route == (b"POST", b"/v1/queries"):
            return await stub.query(body)
        if route == (b"GET", b"/v1/contracts"):
            return await stub.contracts()
        return 404, _error("not_found", "a stub node serves queries only")

    async def serve_all() -> None:
        loop = asyncio.get_running_loop()
        servers = [
            await loop.create_server(partial(_StubProtocol, stub, answer), sock=s, backlog=BACKLOG)
            for s in sockets
            for stub in (by_port[s.getsockname()[1]],)
        ]
        ports = {stub.node.node_id: port for port, stub in by_port.items()}
        written = Path(config["ready"] + ".tmp")
        written.write_text(json.dumps(ports))
        written.rename(config["ready"])  # whole, or not there yet
        await asyncio.gather(*(server.serve_forever() for server in servers))

    asyncio.run(serve_all())


class _StubProtocol(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection to a stub node, on httptools (llhttp): a fleet
    process stands in for nodes on machines of their own, so what it spends per answer on
    the hub's two cores should be what the bench asks of it, not a server framework's
    per-request machinery (uvicorn with h11 was about half of it). Answers carry their
    length, as a node's app (Starlette) sends them; requests are answered in order."""

    def __init__(self, stub: Stub, answer: Any) -> None:
        self.stub, self.answer = stub, answer
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.queue: asyncio.Queue[tuple[bytes, bytes, bytes, bool]] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.worker = asyncio.get_running_loop().create_task(self._work())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        keep_alive = self.parser.should_keep_alive()
        self.queue.put_nowait((method, self.url, b"".join(self.body), keep_alive))
        self.url, self.body = b"", []

    async def _work(self) -> None:
        while True:
            method, url, body, keep_alive = await self.queue.get()
            try:
                status, content = await self.answer(self.stub, method, url.split(b"?", 1)[0], body)
            except Exception:  # as a server answers what its app raised
                status, content = 500, _error("internal", "the stub node failed")
            if self.transport is None:
                return
            reason = {200: b"OK", 403: b"Forbidden", 404: b"Not Found"}.get(status, b"Error")
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                % (status, reason, len(content))
                + content
            )
            if not keep_alive:
                self.transport.close()
                return


def _config(node: StubNode) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "country": node.country,
        "private_jwk": node.private_jwk,
        "contracts": [c.model_dump(mode="json") for c in node.contracts],
        "home": node.home,
    }


def children_cpu_seconds() -> float:
    """CPU seconds used so far by this process's live child processes (a benchmark's stub
    fleet), every thread of each: read from /proc (scheduler nanoseconds, not clock ticks:
    a 20-node query's fleet takes a few of those), 0 where it is not there."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    for thread in Path(f"/proc/{child}/task").iterdir():
                        total += int((thread / "schedstat").read_text().split()[0])
    return total / 1e9


@contextlib.contextmanager
def fleet(
    nodes: Sequence[StubNode],
    *,
    hub_jwk: dict[str, Any],
    work: Path,
    latency: float = 0.1,
    processes: int = 1,
    faults: Mapping[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """Start the fleet's processes; yields each node's base URL; stops them on exit."""
    unknown = set((faults or {}).values()) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults: {sorted(unknown)}")
    work.mkdir(parents=True, exist_ok=True)
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for index in range(max(1, processes)):
            part = nodes[index::processes]
            if not part:
                continue
            tag = uuid.uuid4().hex[:8]
            config, ready = work / f"fleet-{tag}.json", work / f"fleet-{tag}-ports.json"
            config.write_text(
                json.dumps(
                    {
                        "ready": str(ready),
                        "latency": latency,
                        "hub_jwk": hub_jwk,
                        "faults": dict(faults or {}),
                        "nodes": [_config(n) for n in part],
                    }
                )
            )
            command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(config)]
            started.append((subprocess.Popen(command), ready))
        urls: dict[str, str] = {}
        for process, ready in started:
            # The sockets listen before the file is written: a request made before the event
            # loop takes over waits in the kernel's queue.
            while not ready.exists():
                if process.poll() is not None:
                    raise RuntimeError("a stub nodes' process exited")
                time.sleep(0.05)
            ports: dict[str, int] = json.loads(ready.read_text())
            urls.update({node_id: f"http://127.0.0.1:{port}" for node_id, port in ports.items()})
        yield urls
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
    else:
        sys.exit(__doc__)
