"""Real processes for federation tests: the hub under uvicorn, a Celery worker, pull nodes."""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SAUTI = str(Path(sys.executable).with_name("sauti"))
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def redis_available() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> str:
    """Redis URL; skips only when CI is unset and Redis is absent, fails under CI."""
    if redis_available():
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    if os.environ.get("CI"):
        pytest.fail("Redis on 127.0.0.1:6379 is required under CI")
    pytest.skip("Redis on 127.0.0.1:6379 is not running")


def celery_env(redis_url: str, database_url: str) -> dict[str, str]:
    """A broker key prefix and queue of this test's own, so parallel runs never collide."""
    run = f"sauti-test-{os.getpid()}-{secrets.token_hex(4)}"
    return {
        "HUB_DATABASE_URL": database_url,
        "HUB_CELERY_BROKER_URL": redis_url,
        "HUB_CELERY_KEY_PREFIX": f"{run}:",
        "HUB_CELERY_QUEUE": run,
    }


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port for a server another process will bind, from below the kernel's ephemeral
    range: a port from bind(0) is free only until the next bind(0) picks it, and a server
    process takes seconds to start on a loaded machine (a node lost its port so to a server
    that a test on the other xdist worker started meanwhile)."""
    low = _ephemeral_low()
    for _ in range(200):
        # From the OS's randomness: a test that seeds `random` must not make workers agree.
        port = low - 1 - secrets.randbelow(min(12_000, low - 1024))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # that range is full: what the kernel gives
        sock.bind(("127.0.0.1", 0))
        fallback: int = sock.getsockname()[1]
        return fallback


@contextmanager
def process(
    args: list[str], *, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` with its output in `log`; terminate (then kill) it at the end."""
    full_env = {**os.environ, "POLARS_MAX_THREADS": "2", **env}
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((REDIS_HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(port: int, *, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A private Redis without persistence (a restart loses every queued message)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required under CI")
        pytest.skip("redis-server is not installed")
    args = [binary, "--port", str(port), "--bind", REDIS_HOST, "--save", "", "--appendonly", "no"]
    with process(args, env={}, log=log) as proc:
        deadline = time.monotonic() + 30
        while not redis_ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {log}")
            time.sleep(0.05)
        yield proc


# How often a starting process is checked: a refused connection or a log read costs
# microseconds, so checking often wastes nothing and ends each wait soon after the start.
READY_POLL_SECONDS = 0.05


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, *, timeout: float = 90
) -> None:
    """Until `url`'s /v1/health answers (a hub or a node); fails if the process ends first.

    One client for every attempt: a fresh `httpx.get` builds a TLS context each time (tens
    of milliseconds of CPU, taken from the very process being waited for on a busy machine).
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while True:
            try:
                if client.get(f"{url}/v1/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not start; see {log}")
            time.sleep(READY_POLL_SECONDS)


def wait_worker(proc: subprocess.Popen[bytes], log: Path, *, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while "ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start; see {log}")
        time.sleep(READY_POLL_SECONDS)


def _hub_args(home: Path, port: int) -> list[str]:
    return [SAUTI, "hub", "serve", "--home", str(home), "--port", str(port)]


WORKER_ARGS = ["hub", "worker", "--pool", "threads", "--concurrency", "8"]


@contextmanager
def hub_server(
    home: Path, *, env: dict[str, str], log: Path, port: int | None = None
) -> Iterator[str]:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with process(_hub_args(home, port), env=env, log=log) as proc:
        wait_healthy(url, proc, log)
        yield url


@contextmanager
def celery_worker(home: Path, *, env: dict[str, str], log: Path) -> Iterator[None]:
    args = [SAUTI, *WORKER_ARGS, "--home", str(home)]
    with process(args, env=env, log=log) as proc:
        wait_worker(proc, log)
        yield


@contextmanager
def hub_and_worker(
    home: Path, *, env: dict[str, str], hub_log: Path, worker_log: Path, port: int | None = None
) -> Iterator[str]:
    """The hub and a Celery worker, started side by side (each takes seconds to import)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    worker_args = [SAUTI, *WORKER_ARGS, "--home", str(home)]
    with (
        process(worker_args, env=env, log=worker_log) as worker,
        process(_hub_args(home, port), env=env, log=hub_log) as hub,
    ):
        wait_healthy(url, hub, hub_log)
        wait_worker(worker, worker_log)
        yield url
