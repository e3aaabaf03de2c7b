"""Logs without data: `sauti hub serve` and `sauti node serve` on failing paths.

Each server runs as the real command (its own logging configuration). The test plants values
that must never reach a log (a user name with a NUL, a user name and an API token that an
internal error's SQL would carry, the token's hash), drives refusals and internal errors
(a table dropped under the running server makes every query on it fail with its SQL and
parameters in the exception), then reads everything the server wrote.
"""

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from federation_procs import free_port, wait_healthy

pytestmark = pytest.mark.e2e

SAUTI = str(Path(sys.executable).with_name("sauti"))
CANARY_USER = "canary-user-7c1f0e"
NUL_USER = "nul\x00canary-93ab"
CANARY_TOKEN = "sauti_canary-token-5d2e9a77b1"
FORBIDDEN_IN_LOGS = (
    "Traceback",
    "SELECT",
    "[SQL",
    "parameters",
    CANARY_USER,
    "canary-93ab",
    CANARY_TOKEN,
    hashlib.sha256(CANARY_TOKEN.encode()).hexdigest(),
)


@contextmanager
def _serving(command: list[str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=os.environ
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc, log, timeout=60)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _drop(database: Path, *tables: str) -> None:
    with sqlite3.connect(database) as conn:
        for table in tables:
            conn.execute(f"DROP TABLE {table}")


def _assert_data_free(log: Path, request_ids: list[str]) -> None:
    text = log.read_text()
    for planted in FORBIDDEN_IN_LOGS:
        assert planted not in text, f"{planted!r} reached the log:\n{text}"
    for rid in request_ids:
        assert rid in text, f"the internal error of request {rid} is not logged:\n{text}"


def test_hub_logs_hold_no_data_on_failing_paths(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    subprocess.run([SAUTI, "hub", "init", "--home", str(home)], check=True, capture_output=True)
    log = tmp_path / "hub.log"
    internal: list[str] = []
    with _serving([SAUTI, "hub", "serve", "--home", str(home)], log) as url:
        login = f"{url}/v1/auth/login"
        answer = httpx.post(login, json={"username": NUL_USER, "password": "x" * 12})
        assert answer.status_code == 422
        answer = httpx.post(login, json={"username": CANARY_USER, "password": "x" * 12})
        assert answer.status_code == 401
        bearer = {"Authorization": f"Bearer {CANARY_TOKEN}"}
        assert httpx.get(f"{url}/v1/auth/me", headers=bearer).status_code == 401
        assert httpx.get(f"{url}/v1/audit/entries?analyst={CANARY_USER}").status_code == 401

        _drop(home / "hub.sqlite", "users", "api_tokens")
        for answer in (
            httpx.post(login, json={"username": CANARY_USER, "password": "x" * 12}),
            httpx.get(f"{url}/v1/auth/me", headers=bearer),
        ):
            assert answer.status_code == 500
            rid = answer.headers["x-request-id"]
            assert rid in answer.json()["error"]["message"]
            internal.append(rid)
    _assert_data_free(log, internal)


def test_node_logs_hold_no_data_on_failing_paths(tmp_path: Path) -> None:
    home = tmp_path / "node"
    subprocess.run(
        [SAUTI, "node", "init", "--home", str(home), "--name", "Log CSO", "--country", "524"],
        check=True,
        capture_output=True,
    )
    log = tmp_path / "node.log"
    internal: list[str] = []
    with _serving([SAUTI, "node", "serve", "--home", str(home)], log) as url:
        login = f"{url}/v1/steward/login"
        assert (
            httpx.post(login, json={"username": NUL_USER, "password": "x" * 12}).status_code == 422
        )
        assert (
            httpx.post(login, json={"username": CANARY_USER, "password": "x" * 12}).status_code
            == 401
        )
        bearer = {"Authorization": f"Bearer {CANARY_TOKEN}"}
        assert httpx.get(f"{url}/v1/steward/me", headers=bearer).status_code == 401
        assert httpx.post(f"{url}/v1/queries", json={"jws": CANARY_TOKEN}).status_code == 401

        _drop(home / "node.sqlite", "steward_accounts", "steward_tokens")
        for answer in (
            httpx.post(login, json={"username": CANARY_USER, "password": "x" * 12}),
            httpx.get(f"{url}/v1/steward/me", headers=bearer),
        ):
            assert answer.status_code == 500
            rid = answer.headers["x-request-id"]
            assert rid in answer.json()["error"]["message"]
            internal.append(rid)
    _assert_data_free(log, internal)
