"""The hub's node client keeps one connection pool per node origin, over real sockets."""

import asyncio
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.queries.transport import (
    NodeConnections,
    PerOriginTransport,
    ResponseTooLarge,
    node_client,
    post_node,
)

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def _server(connections: list[int]) -> asyncio.Server:
    """A minimal keep-alive HTTP/1.1 server counting the connections it accepts."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_one_pool_per_origin_and_connections_are_reused() -> None:
    async def run() -> tuple[list[int], list[int], list[tuple[str, str, int | None]]]:
        a_conns: list[int] = []
        b_conns: list[int] = []
        a, b = await _server(a_conns), await _server(b_conns)
        ports = [s.sockets[0].getsockname()[1] for s in (a, b)]
        transport = PerOriginTransport()
        async with a, b, node_client(timeout=5, transport=transport) as client:
            for _ in range(5):
                for port in ports:
                    r = await client.post(f"http://127.0.0.1:{port}/v1/queries", json={"x": 1})
                    assert r.status_code == 200
            origins = transport.origins
        assert transport.origins == []  # closed with the client
        return a_conns, b_conns, origins

    a_conns, b_conns, origins = asyncio.run(run())
    assert len(origins) == 2
    # Sequential calls to one node reuse its one kept-alive connection.
    assert len(a_conns) == 1
    assert len(b_conns) == 1


def test_closed_transport_refuses_requests() -> None:
    async def run() -> None:
        transport = PerOriginTransport()
        await transport.aclose()
        with pytest.raises(RuntimeError):
            await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))

    asyncio.run(run())


async def _scripted(
    answers: list[bytes], connections: list[int], heads: list[bytes] | None = None
) -> asyncio.Server:
    """A server answering each request with the next scripted bytes; b"" closes instead, as
    does an answer saying `connection: close` once written."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                if heads is not None:
                    heads.append(head.lower())
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                answer = answers.pop(0)
                if not answer:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


CHUNKED = b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'
UNTIL_CLOSE = b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"b":2}'
REDIRECT = (
    b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:9/\r\ncontent-length: 0\r\n\r\n"
)


def test_deliveries_take_the_lean_path_with_lengths_chunks_and_keep_alive() -> None:
    async def run() -> tuple[list[tuple[int, bytes]], list[int]]:
        conns: list[int] = []
        server = await _scripted([RESPONSE, CHUNKED, REDIRECT, RESPONSE, UNTIL_CLOSE], conns)
        port = server.sockets[0].getsockname()[1]
        transport = PerOriginTransport()
        got = []
        async with server, node_client(timeout=5, transport=transport) as client:
            for _ in range(5):
                got.append(
                    await post_node(
                        client,
                        f"http://127.0.0.1:{port}/v1/queries",
                        b"{}",
                        headers={},
                        timeout=5,
                        max_bytes=1000,
                    )
                )
            assert transport.origins == []  # never through httpx's pools
        return got, conns

    got, conns = asyncio.run(run())
    # A redirect is an answer like any other, never followed.
    assert got == [(200, b"{}"), (200, b'{"a":1}'), (307, b""), (200, b"{}"), (200, b'{"b":2}')]
    assert len(conns) == 1


def test_an_answer_over_the_limit_is_refused_unread_and_a_closed_connection_is_replaced() -> None:
    # Announced far over the limit, and only begun: waiting for the rest would time out.
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n" + b" " * 100
    # Streamed over the limit, never ended: refused once the limit is passed.
    big_chunks = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"400\r\n" + b" " * 1024

    async def run() -> tuple[list[str], list[int]]:
        conns: list[int] = []
        # The second request finds its kept-alive connection closed by the server ("").
        server = await _scripted([RESPONSE, b"", RESPONSE, big, big_chunks], conns)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/queries"
        seen = []
        async with server, node_client(timeout=5) as client:
            for _ in range(4):
                try:
                    status, _ = await post_node(
                        client, url, b"{}", headers={}, timeout=5, max_bytes=1000
                    )
                    seen.append(str(status))
                except ResponseTooLarge:
                    seen.append("too large")
        return seen, conns

    seen, conns = asyncio.run(run())
    assert seen == ["200", "200", "too large", "too large"]
    assert len(conns) == 3  # a new connection after the close and after each refusal


def test_a_node_that_does_not_answer_times_out() -> None:
    async def run() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read()  # until the hub gives up and closes
            finally:
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/queries"
        async with server, node_client(timeout=5) as client:
            with pytest.raises(httpx.TimeoutException):
                await post_node(client, url, b"{}", headers={}, timeout=0.2, max_bytes=1000)

    asyncio.run(run())


def test_deliveries_keep_no_cookies_and_take_no_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy nobody listens on: a delivery through it would fail.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with_cookie = RESPONSE.replace(b"\r\n\r\n", b"\r\nset-cookie: s=1; Path=/\r\n\r\n", 1)

    async def run() -> tuple[list[int], list[bytes]]:
        conns: list[int] = []
        heads: list[bytes] = []
        server = await _scripted([with_cookie, RESPONSE], conns, heads)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/queries"
        statuses = []
        async with server, node_client(timeout=5) as client:
            for _ in range(2):
                status, _ = await post_node(
                    client, url, b"{}", headers={"x-sauti": "1"}, timeout=5, max_bytes=1000
                )
                statuses.append(status)
        return statuses, heads

    statuses, heads = asyncio.run(run())
    assert statuses == [200, 200]
    assert len(heads) == 2
    assert all(head.startswith(b"post /v1/queries http/1.1") for head in heads)
    assert all(b"x-sauti: 1" in head for head in heads)
    assert not any(b"cookie" in head for head in heads)


def test_informational_answers_are_skipped_and_a_204_has_no_body() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + RESPONSE
    empty = b"HTTP/1.1 204 No Content\r\n\r\n"

    async def run() -> list[tuple[int, bytes]]:
        conns: list[int] = []
        server = await _scripted([early, empty, RESPONSE], conns)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/queries"
        async with server, node_client(timeout=5) as client:
            return [
                await post_node(client, url, b"{}", headers={}, timeout=5, max_bytes=1000)
                for _ in range(3)
            ]

    assert asyncio.run(run()) == [(200, b"{}"), (204, b""), (200, b"{}")]


def test_deliveries_beyond_the_concurrency_wait_their_turn() -> None:
    async def run() -> tuple[int, list[int]]:
        active = [0]
        peak = [0]

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                    await asyncio.sleep(0.05)
                    active[0] -= 1
                    writer.write(RESPONSE)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(slow, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/queries"
        async with server, node_client(timeout=5, concurrency=2) as client:
            got = await asyncio.gather(
                *(
                    post_node(client, url, b"{}", headers={}, timeout=5, max_bytes=1000)
                    for _ in range(6)
                )
            )
        return peak[0], [status for status, _ in got]

    peak, statuses = asyncio.run(run())
    assert statuses == [200] * 6
    assert peak == 2


def test_concurrency_fits_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource  # noqa: PLC0415

    from hub.queries import transport  # noqa: PLC0415

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 4096))
    # Half of what the reserve leaves in flight, the rest for idle kept-alive connections.
    assert transport.bounded_concurrency(4096) == (1024 - transport.FD_RESERVE) // 2
    assert transport.bounded_concurrency(256) == 256
    assert transport.idle_room(256) == 1024 - transport.FD_RESERVE - 256
    unlimited = resource.RLIM_INFINITY
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (unlimited, unlimited))
    assert transport.bounded_concurrency(4096) == 4096


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "node.pem", tmp_path / "node.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_deliveries_over_tls_check_the_node_certificate(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)

    async def run() -> tuple[tuple[int, bytes], str]:
        handler = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=server_tls)
        url = f"https://127.0.0.1:{handler.sockets[0].getsockname()[1]}/v1/queries"
        trusting = ssl.create_default_context(cafile=str(cert_path))
        async with handler:
            trusted = NodeConnections(trusting, concurrency=4)
            got = await trusted.post(url, b"{}", headers={}, timeout=5, max_bytes=1000)
            await trusted.aclose()
            untrusted = NodeConnections(ssl.create_default_context(), concurrency=4)
            try:
                await untrusted.post(url, b"{}", headers={}, timeout=5, max_bytes=1000)
                refused = "answered"
            except httpx.ConnectError:
                refused = "refused"
            await untrusted.aclose()
        return got, refused

    got, refused = asyncio.run(run())
    assert got == (200, b"{}")
    assert refused == "refused"  # a certificate the hub does not trust: never spoken to


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(RESPONSE)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
