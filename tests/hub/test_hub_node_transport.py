"""The hub's node client keeps one connection pool per node origin, over real sockets."""

import asyncio

import httpx
import pytest

from hub.queries.transport import PerOriginTransport, node_client

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
