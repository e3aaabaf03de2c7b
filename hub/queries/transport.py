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
with a length, chunked, or ended by the connection's close, parsed by httptools (llhttp) as
it arrives with no reader object in between; an answer over `max_bytes` refused unread
(announced) or as soon as the stream passes it; a status line and headers of at most 64 KiB;
informational (1xx) answers skipped; kept-alive connections per node (idle ones closed after
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

import httptools
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
    """One connection to a node: one request at a time, its answer read as it arrives by
    httptools (llhttp, the C parser uvicorn serves with), which checks the status line,
    headers, lengths and chunks (extensions and trailers included) and says whether the
    connection may be kept (`should_keep_alive`). Kept here: the heads of an answer (any
    informational ones and the final one) at most `MAX_HEAD_BYTES` in all, fed no further
    until the head is complete; an announced length over `max_bytes` refused unread and a
    streamed body as soon as it passes it; bytes carrying no body (chunk lines, trailers) at
    most `MAX_HEAD_BYTES` in a row, as httptools holds a header or trailer whole; 1xx skipped
    (101 refused); any byte past the answer makes the connection not kept.

    A body ended by the connection's close (neither length nor chunked) is the one answer
    llhttp cannot finish here: httptools does not bind `llhttp_finish`, its end-of-input
    call. Nodes never send one (uvicorn, with h11 or httptools, answers an HTTP/1.1 request
    with a length or chunked), but an HTTP/1.0 server or proxy in front of a node may, and
    the hub read them before; so the end of such a body is taken here, on a clean close
    only (a reset is a cut answer)."""

    def __init__(self, pool: NodeConnections, origin: _Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.idle_since = 0.0
        self.reused = False
        self._transport: asyncio.Transport | None = None
        self._closed = False
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._max_bytes = 0
        self._received = False
        # The answer being read: the head's room left while it lasts, the announced length,
        # whether it is chunked, its status, its body so far, bytes in a row with no body,
        # and once complete whether the connection stays open after it.
        self._in_head = True
        self._head_room = MAX_HEAD_BYTES
        self._length: int | None = None
        self._chunked = False
        self._status = 0
        self._body: list[bytes] = []
        self._size = 0
        self._stalled = 0
        self._complete = False
        self._keep = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes while idle: the node spoke out of turn
            return
        self._received = True
        try:
            self._feed(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if not self._complete:
                # A callback's own error (too large, refused) or llhttp's: not valid HTTP.
                cause = exc.__context__
                self._fail(cause if isinstance(cause, Exception) else _BadAnswer())
                return
            self._keep = False  # bytes past the answer: the connection is not reused
        except Exception as exc:  # handed to the waiting request
            self._fail(exc)
            return
        if self._complete:
            self._done(keep=self._keep)

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
        self._max_bytes = max_bytes
        self._received = self._chunked = self._complete = False
        self._in_head, self._head_room = True, MAX_HEAD_BYTES
        self._length = None
        self._body = []
        self._size = self._stalled = 0
        self._transport.write(request)
        try:
            return await self._waiter
        except _Stale:
            if fresh:  # a new connection closed unanswered: the node's doing
                raise httpx.RemoteProtocolError("the node closed the connection") from None
            raise
        finally:
            self._waiter = None

    # reading (httptools calls the on_* methods from feed_data)

    def _feed(self, data: bytes) -> None:
        parser = self._parser
        if self._in_head:
            room = self._head_room
            if len(data) <= room:
                self._head_room = room - len(data)
                parser.feed_data(data)
                return
            # The head must end within its room: fed that far, then the rest if it did.
            view = memoryview(data)
            parser.feed_data(view[:room])
            if self._in_head:
                raise _BadAnswer
            parser.feed_data(view[room:])
            return
        size = self._size
        parser.feed_data(data)
        if self._size > size or self._complete:
            self._stalled = 0
        else:
            self._stalled += len(data)
            if self._stalled > MAX_HEAD_BYTES:
                raise _BadAnswer

    def on_message_begin(self) -> None:
        if self._complete:
            raise _BadAnswer  # a second answer: caught as bytes past the first

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a trailer: ignored
        name = name.lower()
        if name == b"content-length":
            self._length = int(value)  # digits, no duplicates: llhttp checked
        elif name == b"transfer-encoding":
            if not value.strip().lower().endswith(b"chunked"):
                raise _BadAnswer  # another coding: never asked for
            self._chunked = True

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if parser.get_http_version() not in ("1.1", "1.0") or status == 101:
            raise _BadAnswer  # nothing here asks to switch protocols
        if 100 <= status < 200:
            return  # informational: its message ends here, the answer follows
        self._status, self._in_head = status, False
        length = self._length
        if length is not None and length > self._max_bytes and status not in (204, 304):
            raise ResponseTooLarge("the node's answer is too large")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_bytes:
            raise ResponseTooLarge("the node's answer is too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._in_head:  # an informational answer ended
            self._length, self._chunked = None, False
            return
        self._complete = True
        self._keep = self._parser.should_keep_alive()

    def _done(self, *, keep: bool) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, b"".join(self._body), keep))

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
        if exc is None and not self._in_head and self._length is None and not self._chunked:
            self._done(keep=False)  # a body ended by the close (see the class's docstring)
            return
        self._fail(httpx.ReadError("the node closed the connection mid-answer"))


class _BadAnswer(Exception):
    """Not an HTTP/1.x answer this client reads."""
