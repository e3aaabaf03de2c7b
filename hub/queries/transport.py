"""The hub's HTTP client for nodes: one shared client, one connection pool per node.

httpcore's pool scans every connection it holds (and asks each socket whether it has
expired) whenever a request is queued or released, so one pool holding a connection to
each of N nodes makes a fan-out cost O(N^2) socket checks per query: about 3 ms of CPU per
node at 20 nodes, more than signing and verifying together. One pool per node origin keeps
each scan to that node's own few connections. The client (timeouts, headers, one per
process or worker) stays shared, as the federation design asks.

Push deliveries (`post_node`), one per node per query, take a leaner path still: measured
here, an httpx POST costs ≈1.7 ms of CPU and httpcore alone ≈1.2 ms, against ≈0.25 ms for the
same exchange written on asyncio streams, and the hub's whole budget is 1 ms per node per
query (issue #25). `NodePools` speaks just what a delivery needs of HTTP/1.1 (one POST with
a length, an answer with a length or chunked, keep-alive, TLS with the client's context)
and refuses an answer over `max_bytes` before reading it. Every other node call (contracts,
secure aggregation) and any injected transport (tests' in-process nodes) use httpx.
"""

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

# An idle connection is reused for this long (httpx's default keep-alive expiry).
KEEPALIVE_SECONDS = 5.0
MAX_IDLE_PER_ORIGIN = 8
MAX_HEAD_BYTES = 64 * 1024


class ResponseTooLarge(httpx.TransportError):
    """A node's answer over the hub's limit: refused unread."""


class PerOriginTransport(httpx.AsyncBaseTransport):
    """Routes each request to the pool of its origin (scheme, host, port), made on first use."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}
        self._closed = False
        # One TLS context for every pool: building one loads the CA bundle (tens of ms).
        self._tls = httpx.create_ssl_context()
        self.lean = NodePools(self._tls)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        origin = (request.url.scheme, request.url.host, request.url.port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = httpx.AsyncHTTPTransport(verify=self._tls)
        return await pool.handle_async_request(request)

    @property
    def origins(self) -> list[tuple[str, str, int | None]]:
        """The origins this transport holds a pool for."""
        return list(self._pools)

    async def aclose(self) -> None:
        self._closed = True
        self.lean.close()
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.aclose() for pool in pools))


class NodeClient(httpx.AsyncClient):
    """The hub's client for nodes; keeps its transport at hand for `post_node`."""

    def __init__(self, *, timeout: float, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(transport=transport, timeout=timeout)
        self.node_transport = transport


def node_client(
    *, timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The client a hub process (or Celery worker) uses for every node call; `transport`
    lets tests route node calls in process (e.g. to ASGI node apps)."""
    return NodeClient(transport=transport or PerOriginTransport(), timeout=timeout)


async def post_node(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int,
) -> tuple[int, bytes]:
    """POST a JSON `body`; the status and the answer's bytes. Raises httpx's transport errors
    (timeouts included) and `ResponseTooLarge` for an answer over `max_bytes`."""
    transport = getattr(client, "node_transport", None)
    if isinstance(transport, PerOriginTransport):
        return await transport.lean.post(
            url, body, headers=headers, timeout=timeout, max_bytes=max_bytes
        )
    async with client.stream(
        "POST",
        url,
        content=body,
        headers={"content-type": "application/json", **headers},
        timeout=timeout,
    ) as response:
        content = b""
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > max_bytes:
                raise ResponseTooLarge("the node's answer is too large")
        return response.status_code, content


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def usable(self) -> bool:
        fresh = time.monotonic() - self.idle_since < KEEPALIVE_SECONDS
        # Bytes or EOF waiting on an idle connection: the server closed it (or spoke out of
        # turn); never send a request on it.
        return fresh and not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class NodePools:
    """Idle keep-alive connections per node origin, and one POST at a time on each."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self._tls = tls
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str],
        timeout: float,
        max_bytes: int,
    ) -> tuple[int, bytes]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {parts.scheme}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        host = parts.netloc.rsplit("@", 1)[-1]
        lines = [
            f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
            f"Host: {host}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Accept: application/json",
            "User-Agent: sauti-hub",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(timeout):
                connection = self._take(origin)
                if connection is not None:
                    try:
                        return await self._exchange(origin, connection, request, max_bytes)
                    except (_Stale, httpx.ReadError, httpx.RemoteProtocolError):
                        # Closed by the node while idle: once more on a new connection (the
                        # request is idempotent: a node answers a known query from its store).
                        pass
                connection = await self._connect(origin)
                return await self._exchange(origin, connection, request, max_bytes)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("the node did not answer in time") from exc
        except _Stale as exc:
            raise httpx.RemoteProtocolError("the node closed the connection") from exc

    def _take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        try:
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=self._tls if scheme == "https" else None,
                limit=MAX_HEAD_BYTES,
            )
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(type(exc).__name__) from exc
        return _Connection(reader, writer)

    async def _exchange(
        self, origin: tuple[str, str, int], connection: _Connection, request: bytes, max_bytes: int
    ) -> tuple[int, bytes]:
        reader = connection.reader
        done = False
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _Stale from exc
                raise
            status, length, chunked, keep = _parse_head(head)
            if chunked:
                content = await _read_chunked(reader, max_bytes)
            elif length is not None:
                if length > max_bytes:
                    raise ResponseTooLarge("the node's answer is too large")
                content = await reader.readexactly(length)
            else:  # delimited by the end of the connection
                content = await reader.read(max_bytes + 1)
                while not reader.at_eof() and len(content) <= max_bytes:
                    content += await reader.read(max_bytes + 1 - len(content))
                if len(content) > max_bytes:
                    raise ResponseTooLarge("the node's answer is too large")
                keep = False
            done = keep
            return status, content
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise httpx.RemoteProtocolError("the node's answer is not valid HTTP") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ReadError(type(exc).__name__) from exc
        finally:
            if done:
                connection.idle_since = time.monotonic()
                idle = self._idle.setdefault(origin, deque())
                if len(idle) < MAX_IDLE_PER_ORIGIN:
                    idle.append(connection)
                else:
                    connection.close()
            else:
                connection.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


class _Stale(Exception):
    """A kept-alive connection the node had closed before the request reached it."""


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """Status, content length, chunked, keep-alive; ValueError if it is not HTTP/1.x."""
    lines = head.decode("latin-1").split("\r\n")
    version, code = lines[0].split(" ", 2)[:2]
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ValueError("not an HTTP/1.x status line")
    length: int | None = None
    chunked = False
    keep = version == "HTTP/1.1"
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            length = int(value)
            if length < 0:
                raise ValueError("negative content length")
        elif name == "transfer-encoding":
            chunked = value.lower().endswith("chunked")
        elif name == "connection":
            keep = value.lower() == "keep-alive" or (keep and value.lower() != "close")
    return int(code), (None if chunked else length), chunked, keep


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    content = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(content)
        if len(content) + size > max_bytes:
            raise ResponseTooLarge("the node's answer is too large")
        content += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk without its line end")
