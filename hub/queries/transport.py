"""The hub's HTTP client for nodes: one shared client, one connection pool per node.

httpcore's pool scans every connection it holds (and asks each socket whether it has
expired) whenever a request is queued or released, so one pool holding a connection to
each of N nodes makes a fan-out cost O(N^2) socket checks per query: about 3 ms of CPU per
node at 20 nodes, more than signing and verifying together. One pool per node origin keeps
each scan to that node's own few connections. The client (timeouts, headers, one per
process or worker) stays shared, as the federation design asks.

Push deliveries (`post_node`), one per node per query, take a leaner path: an httpx POST
costs ≈1.7 ms of CPU (httpcore alone ≈1.2 ms) against the hub's budget of 1 ms per node per
query (issue #25), and aiohttp's request machinery (a ClientRequest, a header multidict, a
connector key and acquisition, a ClientResponse and its StreamReader per exchange) ≈0.18 ms
of a 0.23 ms exchange on this machine. `NodeConnections` speaks just what a delivery needs
of HTTP/1.1 on asyncio protocols, ≈0.06 ms an exchange: one POST with a length; an answer
with a length, chunked, or ended by the connection's close, read as it arrives with no
reader object in between; an answer over `max_bytes` refused unread (announced) or as soon
as the stream passes it; a status line and headers of at most 64 KiB; informational (1xx)
answers skipped; kept-alive connections per node (idle ones closed after
`KEEPALIVE_SECONDS`), at most HUB_NODE_CONCURRENCY exchanges in all and
`MAX_CONNECTIONS_PER_NODE` per node, the others waiting in order; TLS with the httpx
client's context; no redirects, no cookies, no proxies or netrc from the environment (the
httpx client, with its own transport, never used them either). Every other node call
(contracts, secure aggregation) and any injected transport (tests' in-process nodes) use
httpx.
"""

import asyncio
import collections
import logging
import resource
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

# An idle connection is reused for this long (httpx's default keep-alive expiry).
KEEPALIVE_SECONDS = 5.0
# A node is one machine answering one query at a time per request: more simultaneous
# deliveries to it than this would only queue there, so they queue here instead.
MAX_CONNECTIONS_PER_NODE = 32
DEFAULT_CONCURRENCY = 256
# Idle kept-alive connections per node; an answer's status line and headers at most; node
# URLs whose parsed request head is kept.
MAX_IDLE_PER_NODE = 8
MAX_HEAD_BYTES = 64 * 1024
MAX_TARGETS = 16_384
_Origin = tuple[str, str, int]
# File descriptors left for everything but node connections (database, listening sockets,
# logs, other clients) when the process's open-file limit bounds them.
FD_RESERVE = 128

log = logging.getLogger("hub.federation")
_warned: set[tuple[int, int]] = set()


def open_file_limit() -> int | None:
    """The process's soft limit on open files (`ulimit -n`); None if unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def bounded_concurrency(concurrency: int) -> int:
    """`concurrency` (HUB_NODE_CONCURRENCY), lowered if need be so that as many connections
    in flight and as many kept idle fit the open-file limit with `FD_RESERVE` to spare: past
    it, connecting fails (EMFILE) and deliveries would end `node_unreachable`."""
    limit = open_file_limit()
    if limit is None:
        return max(1, concurrency)
    bounded = max(1, min(concurrency, (limit - FD_RESERVE) // 2))
    if bounded < concurrency and (concurrency, limit) not in _warned:
        _warned.add((concurrency, limit))
        log.warning(
            "HUB_NODE_CONCURRENCY %d lowered to %d: the open-file limit is %d (ulimit -n)",
            concurrency,
            bounded,
            limit,
        )
    return bounded


def idle_room(concurrency: int) -> int:
    """Connections that may be kept idle besides `concurrency` in flight (open-file limit)."""
    limit = open_file_limit()
    return 1 << 30 if limit is None else max(0, limit - FD_RESERVE - concurrency)


class ResponseTooLarge(httpx.TransportError):
    """A node's answer over the hub's limit: refused unread."""


class PerOriginTransport(httpx.AsyncBaseTransport):
    """Routes each request to the pool of its origin (scheme, host, port), made on first use."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self._pools: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}
        self._closed = False
        # One TLS context for every pool: building one loads the CA bundle (tens of ms).
        self._tls = httpx.create_ssl_context()
        self.lean = NodeConnections(self._tls, concurrency=concurrency)

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
        await self.lean.aclose()
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.aclose() for pool in pools))


class NodeClient(httpx.AsyncClient):
    """The hub's client for nodes; keeps its transport at hand for `post_node`."""

    def __init__(self, *, timeout: float, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(transport=transport, timeout=timeout)
        self.node_transport = transport


def node_client(
    *,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> httpx.AsyncClient:
    """The client a hub process (or Celery worker) uses for every node call, holding at most
    `concurrency` connections for deliveries; `transport` lets tests route node calls in
    process (e.g. to ASGI node apps)."""
    return NodeClient(
        transport=transport or PerOriginTransport(concurrency=concurrency), timeout=timeout
    )


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


class NodeConnections:
    """Push deliveries over HTTP/1.1 on asyncio protocols, made on the event loop that first
    posts: at most `concurrency` exchanges at once (`MAX_CONNECTIONS_PER_NODE` per node, the
    others wait in order), one request at a time per connection, idle connections kept alive
    per origin for `KEEPALIVE_SECONDS`."""

    def __init__(self, tls: ssl.SSLContext, *, concurrency: int) -> None:
        self._tls = tls
        concurrency = bounded_concurrency(concurrency)
        self._slots = _Slots(concurrency)
        self._max_idle = idle_room(concurrency)
        self._idle_count = 0
        self._per_origin: dict[_Origin, _Slots] = {}
        self._idle: dict[_Origin, list[_Exchange]] = {}
        self._busy: set[_Exchange] = set()
        self._targets: dict[str, tuple[_Origin, bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str],
        timeout: float,
        max_bytes: int,
    ) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("the node client belongs to another event loop")
        if self._closed:
            raise RuntimeError("the node client is closed")
        origin, head = self._target(url)
        request = b"".join(
            (head, _extra_headers(headers), b"Content-Length: %d\r\n\r\n" % len(body), body)
        )
        connecting = True
        try:
            async with asyncio.timeout(timeout):
                await self._acquire(origin)
                try:
                    exchange = self._take(origin)
                    if exchange is not None:
                        connecting = False
                        try:
                            return await self._exchange(origin, exchange, request, max_bytes)
                        except _Stale:
                            # A kept-alive connection the node closed as the request left:
                            # once more on a new one (the request is idempotent: a node
                            # answers a known query from its store).
                            connecting = True
                    exchange = await self._connect(origin)
                    connecting = False
                    return await self._exchange(origin, exchange, request, max_bytes)
                finally:
                    self._release(origin)
        except TimeoutError as exc:
            if connecting:
                raise httpx.ConnectTimeout("the node could not be reached in time") from exc
            raise httpx.ReadTimeout("the node did not answer in time") from exc
        except _Stale as exc:
            raise httpx.RemoteProtocolError("the node closed the connection") from exc

    def _target(self, url: str) -> tuple[_Origin, bytes]:
        """The origin and the request head (up to its length) of a node's URL, parsed once."""
        found = self._targets.get(url)
        if found is not None:
            return found
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol("not an http(s) URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise httpx.UnsupportedProtocol("not an http(s) URL") from exc
        host = parts.netloc.rsplit("@", 1)[-1]
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        _check_header_text(host, target)
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
            "Accept-Encoding: identity\r\nUser-Agent: sauti-hub\r\n"
        ).encode("ascii")
        if len(self._targets) >= MAX_TARGETS:
            self._targets.clear()
        found = self._targets[url] = ((parts.scheme, parts.hostname, port), head)
        return found

    async def _acquire(self, origin: _Origin) -> None:
        # Per node first, then overall, each in arrival order.
        slots = self._per_origin.get(origin)
        if slots is None:
            slots = self._per_origin[origin] = _Slots(MAX_CONNECTIONS_PER_NODE)
        await slots.take()
        try:
            await self._slots.take()
        except BaseException:
            self._release_origin(origin)
            raise

    def _release(self, origin: _Origin) -> None:
        self._slots.give()
        self._release_origin(origin)

    def _release_origin(self, origin: _Origin) -> None:
        slots = self._per_origin[origin]
        slots.give()
        if slots.idle(MAX_CONNECTIONS_PER_NODE):
            del self._per_origin[origin]

    def _take(self, origin: _Origin) -> "_Exchange | None":
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            exchange = idle.pop()
            self._idle_count -= 1
            if exchange.usable(now):
                return exchange
            exchange.close()
        return None

    async def _connect(self, origin: _Origin) -> "_Exchange":
        scheme, host, port = origin
        exchange = _Exchange(self, origin)
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: exchange,
                host,
                port,
                ssl=self._tls if scheme == "https" else None,
                server_hostname=host if scheme == "https" else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(type(exc).__name__) from exc
        return exchange

    async def _exchange(
        self, origin: _Origin, exchange: "_Exchange", request: bytes, max_bytes: int
    ) -> tuple[int, bytes]:
        self._busy.add(exchange)
        kept = False
        try:
            status, content, kept = await exchange.send(request, max_bytes)
            return status, content
        finally:
            self._busy.discard(exchange)
            if kept and not self._closed:
                exchange.idle_since = time.monotonic()
                idle = self._idle.setdefault(origin, [])
                if len(idle) < MAX_IDLE_PER_NODE and self._idle_count < self._max_idle:
                    idle.append(exchange)
                    self._idle_count += 1
                    self._arm_sweep()
                else:
                    exchange.close()
            else:
                exchange.close()

    def _arm_sweep(self) -> None:
        if self._sweep is None and self._loop is not None:
            self._sweep = self._loop.call_later(KEEPALIVE_SECONDS, self._expire)

    def _expire(self) -> None:
        """Close idle connections past their keep-alive (a node not asked again keeps none)."""
        self._sweep = None
        now = time.monotonic()
        for origin in list(self._idle):
            idle = self._idle[origin]
            kept = [e for e in idle if e.usable(now)]
            self._idle_count -= len(idle) - len(kept)
            for exchange in idle:
                if exchange not in kept:
                    exchange.close()
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]
        if self._idle:
            self._arm_sweep()

    def forget(self, exchange: "_Exchange") -> None:
        """A connection the node closed: out of the idle pool at once."""
        idle = self._idle.get(exchange.origin)
        if idle is not None and exchange in idle:
            idle.remove(exchange)
            self._idle_count -= 1
            if not idle:
                del self._idle[exchange.origin]

    async def aclose(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in list(self._idle.values()):
            for exchange in idle:
                exchange.close()
        self._idle.clear()
        self._idle_count = 0
        for exchange in list(self._busy):
            exchange.close()


class _Slots:
    """At most `count` holders; the others wait in arrival order (futures in a deque: handing
    a slot on is O(1), where asyncio.Semaphore scans its waiters)."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def take(self) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.give()  # handed a slot as it was cancelled: the next one takes it
            raise

    def give(self) -> None:
        # The slot goes straight to the first live waiter (it never counts it as free).
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def idle(self, count: int) -> bool:
        return self._free == count and not self._waiting


def _check_header_text(*values: str) -> None:
    for value in values:
        if "\r" in value or "\n" in value or not value.isascii():
            raise httpx.LocalProtocolError("a header value may not hold line breaks")


def _extra_headers(headers: Mapping[str, str]) -> bytes:
    if not headers:
        return b""
    lines = []
    for name, value in headers.items():
        _check_header_text(name, value)
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("ascii")


class _Stale(Exception):
    """A kept-alive connection the node closed before any byte of the answer came."""


class _Exchange(asyncio.Protocol):
    """One connection to a node: one request at a time, its answer parsed as it arrives
    (status line and headers up to `MAX_HEAD_BYTES`; a body by length, chunked, or until the
    connection closes; never more than `max_bytes` of it)."""

    def __init__(self, pool: NodeConnections, origin: _Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.idle_since = 0.0
        self.reused = False
        self._transport: asyncio.Transport | None = None
        self._closed = False
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._buffer = bytearray()
        self._max_bytes = 0
        self._received = False
        # The answer being read: its status, whether the connection stays open after it,
        # and how its body ends (`_length` bytes, chunked, or at the connection's end).
        self._status = 0
        self._keep = False
        self._length: int | None = None
        self._chunked = False
        self._until_close = False
        self._in_body = False
        self._content = bytearray()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes while idle: the node spoke out of turn
            return
        self._received = True
        self._buffer += data
        try:
            self._advance(eof=False)
        except Exception as exc:  # handed to the waiting request
            self._fail(exc)

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._ended(exc)
        self.pool.forget(self)

    # the pool's side

    def usable(self, now: float) -> bool:
        return not self._closed and now - self.idle_since < KEEPALIVE_SECONDS

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    async def send(self, request: bytes, max_bytes: int) -> tuple[int, bytes, bool]:
        """The status, body and whether the connection may be kept for another request."""
        if self._closed or self._transport is None:
            raise _Stale
        self.reused, fresh = True, not self.reused
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._max_bytes = max_bytes
        self._received = self._in_body = self._chunked = self._until_close = False
        self._length = None
        self._content = bytearray()
        self._transport.write(request)
        try:
            return await self._waiter
        except _Stale:
            if fresh:  # a new connection closed unanswered: the node's doing
                raise httpx.RemoteProtocolError("the node closed the connection") from None
            raise
        finally:
            self._waiter = None

    # parsing

    def _advance(self, *, eof: bool) -> None:
        if not self._in_body:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise _BadAnswer
                if eof:
                    raise _BadAnswer
                return
            if end > MAX_HEAD_BYTES:
                raise _BadAnswer
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            if not self._head(head):
                self._advance(eof=eof)  # an informational (1xx) answer: the real one follows
                return
        if self._chunked:
            self._chunks(eof=eof)
        elif self._until_close:
            self._content += self._buffer
            self._buffer.clear()
            if len(self._content) > self._max_bytes:
                raise ResponseTooLarge("the node's answer is too large")
            if eof:
                self._done(keep=False)
        else:
            assert self._length is not None
            if len(self._buffer) >= self._length:
                self._content = self._buffer[: self._length]
                extra = len(self._buffer) > self._length
                self._done(keep=self._keep and not extra)
            elif eof:
                raise _BadAnswer

    def _head(self, head: bytes) -> bool:
        """Reads a status line and headers; False for an informational answer (skipped)."""
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isdigit() and len(code) == 3):
            raise _BadAnswer
        status = int(code)
        if 100 <= status < 200:
            if status == 101:
                raise _BadAnswer  # nothing here asks to switch protocols
            return False
        length: int | None = None
        chunked = False
        keep = version == "HTTP/1.1"
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise _BadAnswer
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise _BadAnswer
                length = int(value)
            elif name == "transfer-encoding":
                chunked = value.lower().endswith("chunked")
                if not chunked:
                    raise _BadAnswer  # another coding: never asked for
            elif name == "connection":
                tokens = {t.strip() for t in value.lower().split(",")}
                keep = "close" not in tokens and (keep or "keep-alive" in tokens)
        self._status, self._in_body = status, True
        if status in (204, 304):
            length, chunked = 0, False
        if chunked:
            # A length alongside chunking is ignored (RFC 9112 6.3); the connection goes.
            self._chunked, self._keep = True, keep and length is None
        elif length is not None:
            if length > self._max_bytes:
                raise ResponseTooLarge("the node's answer is too large")
            self._length, self._keep = length, keep
        else:
            self._until_close, self._keep = True, False
        return True

    def _chunks(self, *, eof: bool) -> None:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                if len(buffer) > 1024 or eof:
                    raise _BadAnswer
                return
            if self._length is None:  # a chunk's size line
                size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise _BadAnswer from None
                if size < 0 or not size_text.isalnum():
                    raise _BadAnswer
                if size == 0:
                    # Trailers (ignored) up to an empty line, then the end.
                    end = buffer.find(b"\r\n\r\n", line_end)
                    if end < 0:
                        if len(buffer) > MAX_HEAD_BYTES or eof:
                            raise _BadAnswer
                        return
                    self._done(keep=self._keep and len(buffer) == end + 4)
                    return
                if len(self._content) + size > self._max_bytes:
                    raise ResponseTooLarge("the node's answer is too large")
                del buffer[: line_end + 2]
                self._length = size
                continue
            if len(buffer) < self._length + 2:
                if eof:
                    raise _BadAnswer
                return
            if buffer[self._length : self._length + 2] != b"\r\n":
                raise _BadAnswer
            self._content += buffer[: self._length]
            del buffer[: self._length + 2]
            self._length = None

    def _done(self, *, keep: bool) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, bytes(self._content), keep))

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if isinstance(exc, _BadAnswer):
                exc = httpx.RemoteProtocolError("the node's answer is not valid HTTP")
            waiter.set_exception(exc)
        self.close()

    def _ended(self, exc: Exception | None = None) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if not self._received:
            self._fail(_Stale() if exc is None or isinstance(exc, OSError) else exc)
            return
        try:
            self._advance(eof=True)
        except Exception as error:  # handed to the waiting request
            self._fail(error)
            return
        if not waiter.done():
            self._fail(httpx.ReadError("the node closed the connection mid-answer"))


class _BadAnswer(Exception):
    """Not an HTTP/1.x answer this client reads."""
