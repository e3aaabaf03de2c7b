"""The bounded httptools server protocol: what it serves, and the input it refuses."""

import contextlib
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request

from runtime.http_server import INVALID_REQUEST, MAX_INCOMPLETE_BYTES, BoundedHttpToolsProtocol
from sauti.serve import serve_in_thread


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(make_app(), http=BoundedHttpToolsProtocol) as handle:
        yield handle.url


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _exchange(url: str, raw: bytes, *, read_all: bool = False) -> bytes:
    """Send `raw` on a new connection; what came back (b"": closed or reset unanswered).

    `read_all`: read until the server closes (a timeout fails the test)."""
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=10) as sock:
        answer = b""
        try:
            sock.sendall(raw)
            while chunk := sock.recv(65536):
                answer += chunk
                if not read_all:
                    break
        except TimeoutError:
            raise
        except OSError:
            pass  # refused and reset while the request was still going out
        return answer


def test_serves_requests_and_bodies(url: str) -> None:
    with httpx.Client(base_url=url) as client:  # one keep-alive connection
        for _ in range(3):
            assert client.get("/ping").json() == {"pong": "yes"}
        body = b"x" * (1 << 20)  # a body far past the bound: progress all along
        assert client.post("/echo", content=body).json() == {"bytes": 1 << 20}
        chunks = iter([b"a"] * 5000)  # chunked, one byte a chunk
        assert client.post("/echo", content=chunks).json() == {"bytes": 5000}


def test_a_head_just_under_the_bound_is_served(url: str) -> None:
    pad = b"a" * (MAX_INCOMPLETE_BYTES - 200)
    answer = _exchange(url, b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


@pytest.mark.parametrize("size", [MAX_INCOMPLETE_BYTES + 4096, 1 << 20])
def test_a_head_past_the_bound_is_refused_as_h11_refuses_it(url: str, size: int) -> None:
    pad = b"a" * size
    answer = _exchange(url, b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + b"\r\n\r\n")
    # The 400 may be lost to a reset while the rest of the head was still going out.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    if answer:
        assert answer.endswith(INVALID_REQUEST.encode())
    assert httpx.get(f"{url}/ping").status_code == 200


def test_a_head_that_never_ends_is_refused_after_the_bound(url: str) -> None:
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        sent, answer = 0, b""
        try:
            while sent < 100 * MAX_INCOMPLETE_BYTES:
                sock.sendall(b"a" * 4096)
                sent += 4096
        except OSError:
            pass
        with contextlib.suppress(OSError):
            answer = sock.recv(4096)
    assert sent < 100 * MAX_INCOMPLETE_BYTES or answer.startswith(b"HTTP/1.1 400")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_an_endless_trailer_closes_the_connection(url: str) -> None:
    # httptools holds a trailer line whole, as it does a header: past the bound, the server
    # closes the connection (the app reading the body sees the client gone), not waits on.
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"3\r\nabc\r\n0\r\nX-Trailer: " + b"t" * (4 * MAX_INCOMPLETE_BYTES)
    answer = _exchange(url, head + body, read_all=True)
    assert answer == b"", answer[:200]  # closed, never answered: the body did not end
    assert httpx.get(f"{url}/ping").status_code == 200


def test_pipelined_requests_are_all_answered(url: str) -> None:
    # 200 small requests in one write: many heads in one read, each completing in turn.
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=10) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
        answer = b""
        while answer.count(b"HTTP/1.1 200") < 200 and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.count(b"HTTP/1.1 200") == 200


def test_a_malformed_request_line_is_refused(url: str) -> None:
    answer = _exchange(url, b"GET /ping HTTP/1.1 extra\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
