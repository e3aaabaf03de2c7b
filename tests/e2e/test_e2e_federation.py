"""The federation end to end with real processes: the hub under uvicorn, a Celery worker on
the real Redis, push nodes on localhost ports and a pull node process, with faults injected.

Nodes: `np-ok` (push), `bd-flaky` (push; its first two answers are lost to a 500 after the
node answered), `ke-pull` (pull; canaries planted in its raw data), `ke-slow` (push; answers
after the deadline), `np-down` (push; nothing listens), `bd-forged` (push; its release is
re-signed with another key).
"""

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from federation_procs import (
    SAUTI,
    celery_env,
    free_port,
    hub_and_worker,
    hub_server,
    process,
    require_redis,
)
from sqlalchemy import create_engine, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from test_e2e_canary import CANARIES, _dump_tables, _plant
from typer.testing import CliRunner

from contracts import signing
from contracts.v1 import Release, SignedAgreement
from hub import home as hub_home
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from node import home as node_home
from node.agreements import service as node_agreements
from node.app import create_app as create_node_app
from node.datasets import service as node_datasets
from node.db import dispose_engines
from node.ledger import service as node_ledger
from node.settings import NodeSettings
from sauti.cli import app as sauti_app
from sauti.demo.data import DemoNode, demo_nodes
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms
from sauti.serve import serve_in_thread

pytestmark = pytest.mark.e2e

RHO = 0.05
TTL_SECONDS = 12


class Faulty:
    """Wrap a node app's POST /v1/queries: `flaky`, `slow` or `forged` (see the module doc).

    A slow node answers `delay` seconds late, or at once after `release()`: a server stopping
    waits for the requests it is answering, and a node still sleeping when its test is done
    would hold the test that long for nothing.
    """

    def __init__(self, app: ASGIApp, mode: str, *, delay: float = 0) -> None:
        self.app, self.mode, self.delay = app, mode, delay
        self.failures = 0
        self.released = threading.Event()

    def release(self) -> None:
        """From now on a slow node answers at once, the requests it is holding included."""
        self.released.set()

    async def _late(self) -> None:
        until = time.monotonic() + self.delay
        while not self.released.is_set() and (left := until - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/queries" or self.mode == "ok":
            await self.app(scope, receive, send)
            return
        if self.mode == "slow":
            await self._late()
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        if self.mode == "flaky" and self.failures < 2:
            # The node answered (and charged); the answer is lost on the way back.
            self.failures += 1
            await _respond(send, 500, {"error": {"code": "internal_error", "message": "lost"}})
            return
        if self.mode == "forged":
            release = Release.model_validate_json(
                signing.unverified_payload(json.loads(body)["jws"])
            )
            await _respond(send, 200, {"jws": signing.sign(release, signing.generate_key())})
            return
        for message in messages:
            await send(message)


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


NODES = {
    "np-ok": ("ok", 0),
    "bd-flaky": ("flaky", 1),
    "ke-pull": ("pull", 2),
    "ke-slow": ("slow", 2),
    "np-down": ("down", 0),
    "bd-forged": ("forged", 1),
}


@pytest.fixture
def redis_url() -> str:
    return require_redis()


def _cli(args: list[str], env: dict[str, str]) -> str:
    result = CliRunner().invoke(sauti_app, args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def _wait(client: httpx.Client, query_id: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(30):
        response = client.get(f"/v1/queries/{query_id}", params={"wait": 10}, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != "running":
            return body
    raise AssertionError("the query never completed")


def _await_poll(database_url: str, node_id: str) -> None:
    """Until the hub has accepted a poll of `node_id` (its nonce is stored)."""
    engine = create_engine(database_url)
    try:
        for _ in range(600):
            with engine.connect() as conn:
                seen = conn.execute(
                    text("SELECT count(*) FROM node_nonces WHERE node_id = :n"), {"n": node_id}
                ).scalar_one()
            if seen:
                return
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"{node_id} never polled the hub")


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    dispose_engines()


def test_federation_with_celery_push_pull_and_faults(
    work: Path, redis_url: str, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = celery_env(redis_url, postgres_url)
    env["HUB_NODE_BACKOFF_SECONDS"] = "0.05"
    hub_dir = work / "hub"
    identity = hub_home.init_home(hub_dir, hub_id="lnob-hub")
    engine = make_engine(postgres_url)
    try:
        with init_db(engine)() as s:
            secretariat = create_token(
                session=s, name="sec", organisation=SECRETARIAT, role="secretariat"
            )
            analyst = create_token(session=s, name="ana", organisation=ANALYST_ORG, role="analyst")
    finally:
        engine.dispose()

    base = demo_nodes(rows=600)
    base[2] = _plant(base[2])
    demo: list[DemoNode] = []
    homes: dict[str, Path] = {}
    for node_id, (_mode, source) in NODES.items():
        node = dataclasses.replace(base[source], node_id=node_id, organisation=f"CSO {node_id}")
        demo.append(node)
        home = work / "nodes" / node_id
        node_home.init_home(home, name=node.organisation, country=node.country, node_id=node_id)
        node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
        homes[node_id] = home

    logs = {"hub": work / "hub.log", "worker": work / "worker.log", "pull": work / "pull.log"}
    hub_port = free_port()
    bodies: list[str] = []
    with ExitStack() as stack:
        hub_url = stack.enter_context(
            hub_and_worker(
                hub_dir, env=env, hub_log=logs["hub"], worker_log=logs["worker"], port=hub_port
            )
        )
        node_urls: dict[str, str] = {"np-down": f"http://127.0.0.1:{free_port()}"}
        for node_id, (mode, _source) in NODES.items():
            if mode in ("pull", "down"):
                continue
            app = Faulty(
                create_node_app(NodeSettings(home=homes[node_id])), mode, delay=TTL_SECONDS + 4
            )
            node_urls[node_id] = stack.enter_context(serve_in_thread(app)).url
            stack.callback(app.release)  # before its server stops (see Faulty)

        # Enrollment: a one-time token per node from the secretariat, `sauti node enroll`.
        for node_id, (mode, _source) in NODES.items():
            token = _cli(
                ["hub", "enroll-token", "create", "--home", str(hub_dir), "--node-id", node_id],
                env,
            ).strip()
            args = ["node", "enroll", "--home", str(homes[node_id]), "--hub", hub_url]
            args += ["--token", token, "--mode", "pull" if mode == "pull" else "push"]
            if mode != "pull":
                args += ["--url", node_urls[node_id]]
            assert "pinned hub key" in _cli(args, env)
            assert node_home.load_identity(homes[node_id]).hub_public_jwk == identity.public_jwk

        client = stack.enter_context(httpx.Client(base_url=hub_url, timeout=120))
        sec = {"Authorization": f"Bearer {secretariat}"}
        ana = {"Authorization": f"Bearer {analyst}"}
        terms = demo_terms(nodes=demo, hub_id=identity.hub_id)
        created = client.post("/v1/agreements", json=terms.model_dump(mode="json"), headers=sec)
        assert created.status_code == 201, created.text
        signed = SignedAgreement.model_validate(created.json()["agreement"])
        for home in homes.values():
            signature = node_agreements.sign(home=home, agreement=signed)
            response = client.post(
                f"/v1/agreements/{terms.agreement_id}/signatures",
                json=signature.model_dump(mode="json"),
                headers=sec,
            )
            assert response.status_code == 201, response.text

        # A short long-poll: a stopped pull node ends only once its poll in flight returns.
        pull_args = [SAUTI, "node", "pull", "--home", str(homes["ke-pull"]), "--wait", "1"]
        puller = ExitStack()
        puller.enter_context(process(pull_args, env={}, log=logs["pull"]))
        # The short deadline below starts with the query: let the pull node's first poll
        # reach the hub first (a loaded machine takes seconds to start a process).
        _await_poll(postgres_url, "ke-pull")

        spec = {
            "agreement_id": terms.agreement_id,
            "dataset": demo[0].contract.name,
            "measure": "count",
            "group_by": ["group", "country"],
            "rho": RHO,
        }
        submitted = client.post(
            "/v1/queries", json=spec, params={"wait": 0, "ttl_seconds": TTL_SECONDS}, headers=ana
        )
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["status"] == "running"
        result = _wait(client, submitted.json()["query_id"], ana)
        bodies += [submitted.text, json.dumps(result)]

        outcomes = {n["node_id"]: (n["outcome"], n["error_code"]) for n in result["nodes"]}
        assert outcomes == {
            "np-ok": ("ok", None),
            "bd-flaky": ("ok", None),
            "ke-pull": ("ok", None),
            "ke-slow": ("timeout", "node_timeout"),
            "np-down": ("failed", "node_unreachable"),
            "bd-forged": ("failed", "release_invalid"),
        }
        assert result["status"] == "partial"
        answered = {"np-ok", "bd-flaky", "ke-pull"}
        assert result["cells"]
        for cell in result["cells"]:
            assert set(cell["nodes"]) <= answered  # never imputed from the others
        # Three 500s would have been three charges; the node charged once.
        (flaky_budget,) = node_ledger.budget_report(home=homes["bd-flaky"])
        assert flaky_budget.queries == 1
        assert flaky_budget.rho_spent == Decimal(repr(RHO))
        # The slow node did answer (late): charged at the node, never counted at the hub.
        (slow_budget,) = node_ledger.budget_report(home=homes["ke-slow"])
        assert slow_budget.queries <= 1

        # A replayed request gets the stored release: no new noise, no new charge.
        db = create_engine(postgres_url.replace("postgresql+psycopg", "postgresql+psycopg"))
        try:
            with db.connect() as conn:
                request_jws, release_jws = conn.execute(
                    text(
                        "SELECT request_jws, release_jws FROM query_nodes"
                        " WHERE node_id = 'np-ok' AND query_id = :q"
                    ),
                    {"q": result["query_id"]},
                ).one()
        finally:
            db.dispose()
        replay = httpx.post(f"{node_urls['np-ok']}/v1/queries", json={"jws": request_jws})
        assert replay.json()["jws"] == release_jws
        (ok_budget,) = node_ledger.budget_report(home=homes["np-ok"])
        assert ok_budget.queries == 1

        # A hub restart with a pull task in flight: the task survives and is answered.
        puller.close()
        second = client.post(
            "/v1/queries",
            json={**spec, "group_by": ["sex"]},
            params={"wait": 0, "ttl_seconds": 120},
            headers=ana,
        )
        assert second.status_code == 202
        second_id = second.json()["query_id"]
        client.close()
        stack.close()  # hub, worker and node servers down
        with ExitStack() as again:
            hub_url = again.enter_context(
                hub_server(hub_dir, env=env, log=logs["hub"], port=hub_port)
            )
            again.enter_context(process(pull_args, env={}, log=logs["pull"]))
            with httpx.Client(base_url=hub_url, timeout=120) as client2:
                progress = client2.get(f"/v1/queries/{second_id}", headers=ana).json()
                assert progress["status"] == "running"
                deadline_result: dict[str, Any] = {}
                for _ in range(30):
                    deadline_result = client2.get(
                        f"/v1/queries/{second_id}", params={"wait": 5}, headers=ana
                    ).json()
                    pull_state = next(
                        n for n in deadline_result["nodes"] if n["node_id"] == "ke-pull"
                    )
                    if pull_state["outcome"] != "pending":
                        break
                assert pull_state["outcome"] == "ok"
                bodies.append(json.dumps(deadline_result))
                for path in ("/v1/queries", "/v1/nodes"):
                    bodies.append(client2.get(path, headers=ana).text)

    database_text = _dump_tables(postgres_url)
    log_text = "".join(p.read_text(errors="replace") for p in logs.values() if p.exists())
    log_text += caplog.text
    assert "refused" in log_text or "release_invalid" in log_text or "invalid release" in log_text
    hub_files = [p for p in hub_dir.rglob("*") if p.is_file()]
    for canary in CANARIES:
        for body in bodies:
            assert canary not in body
        assert canary not in database_text
        assert canary not in log_text
        for path in hub_files:
            assert canary.encode() not in path.read_bytes(), path
