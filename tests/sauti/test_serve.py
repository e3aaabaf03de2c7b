"""`serve_in_thread`: a real socket, a URL that answers, and no thread left behind."""

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from runtime.http_server import BoundedHttpToolsProtocol
from sauti.serve import ServerError, serve_in_thread


def _server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("uvicorn-")]


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


def test_serves_on_a_free_port_and_stops() -> None:
    with serve_in_thread(make_app()) as handle:
        assert handle.url.startswith("http://127.0.0.1:")
        assert not handle.url.endswith(":0")
        with httpx.Client(base_url=handle.url) as client:
            assert client.get("/ping").json() == {"pong": "yes"}
        assert handle.thread.is_alive()
    assert not handle.thread.is_alive()
    assert _server_threads() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.url}/ping")


@pytest.mark.parametrize("http", [BoundedHttpToolsProtocol, "h11"])
def test_a_request_head_past_the_bound_is_refused(http: type[asyncio.Protocol] | str) -> None:
    # Both refuse a head past 16 KiB (the default, as `sauti hub serve` and `sauti node serve`
    # run it, and h11); uvicorn's own httptools server would take any and answer 200.
    with serve_in_thread(make_app(), http=http) as handle:
        port = int(handle.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            try:
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (1 << 20))
                sock.sendall(b"\r\n\r\n")
                answer = sock.recv(4096)
            except OSError:
                answer = b""  # refused and reset while the head was still going out
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert httpx.get(f"{handle.url}/ping").status_code == 200


def test_two_servers_get_distinct_ports() -> None:
    with serve_in_thread(make_app()) as one, serve_in_thread(make_app()) as two:
        assert one.url != two.url
        assert httpx.get(f"{two.url}/ping").status_code == 200
        assert httpx.get(f"{one.url}/ping").status_code == 200


def test_stops_even_when_the_block_raises() -> None:
    with pytest.raises(KeyError), serve_in_thread(make_app()) as handle:
        raise KeyError("boom")
    assert not handle.thread.is_alive()


def test_startup_failure_is_reported_not_hung() -> None:
    @asynccontextmanager
    async def broken(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("startup fails")
        yield

    app = FastAPI(lifespan=broken)
    with pytest.raises(ServerError), serve_in_thread(app, log_level="critical"):
        pass
    assert _server_threads() == []
