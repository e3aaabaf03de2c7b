"""The hub's HTTP client for nodes: one shared client, one connection pool per node.

httpcore's pool scans every connection it holds (and asks each socket whether it has
expired) whenever a request is queued or released, so one pool holding a connection to
each of N nodes makes a fan-out cost O(N^2) socket checks per query: about 3 ms of CPU per
node at 20 nodes, more than signing and verifying together. One pool per node origin keeps
each scan to that node's own few connections. The client (timeouts, headers, one per
process or worker) stays shared, as the federation design asks.

Push deliveries (`post_node`), one per node per query, take a leaner path: an httpx POST
costs ≈1.7 ms of CPU (httpcore alone ≈1.2 ms) against the hub's budget of 1 ms per node per
query (issue #25), so they go through aiohttp (its HTTP parser is C): one `ClientSession`
per client and event loop, kept-alive connections (at most HUB_NODE_CONCURRENCY in all),
no redirects, no cookies, no proxies or netrc from the environment (the httpx client, with
its own transport, never used them either), TLS with the httpx client's context, and an
answer over `max_bytes` refused before or while it is read. Every other node call
(contracts, secure aggregation) and any injected transport (tests' in-process nodes) use
httpx.
"""

import asyncio
import ssl
from collections.abc import Mapping

import aiohttp
import httpx

# An idle connection is reused for this long (httpx's default keep-alive expiry).
KEEPALIVE_SECONDS = 5.0
# A node is one machine answering one query at a time per request: more simultaneous
# deliveries to it than this would only queue there, so they queue here instead.
MAX_CONNECTIONS_PER_NODE = 32
DEFAULT_CONCURRENCY = 256


class ResponseTooLarge(httpx.TransportError):
    """A node's answer over the hub's limit: refused unread."""


class PerOriginTransport(httpx.AsyncBaseTransport):
    """Routes each request to the pool of its origin (scheme, host, port), made on first use."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self._pools: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}
        self._closed = False
        # One TLS context for every pool: building one loads the CA bundle (tens of ms).
        self._tls = httpx.create_ssl_context()
        self.lean = NodeSessions(self._tls, concurrency=concurrency)

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


class NodeSessions:
    """One aiohttp session for push deliveries, made on the event loop that first posts."""

    def __init__(self, tls: ssl.SSLContext, *, concurrency: int) -> None:
        self._tls = tls
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None:
            connector = aiohttp.TCPConnector(
                ssl=self._tls,
                limit=self._concurrency,
                limit_per_host=min(self._concurrency, MAX_CONNECTIONS_PER_NODE),
                keepalive_timeout=KEEPALIVE_SECONDS,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                # `post` bounds each exchange with asyncio.timeout: aiohttp's own total
                # timeout (300 s by default) only added a second timer per request. Its
                # connect timeout (only while connecting) is kept, as before.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
                # Answers are signed JSON bytes, verified as sent: never decoded here, and
                # asked for as they are (`identity` set here, not aiohttp's default dropped
                # with skip_auto_headers, which rebuilt a header dict on every request).
                auto_decompress=False,
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Accept-Encoding": "identity",
                    "User-Agent": "sauti-hub",
                },
            )
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("the node client belongs to another event loop")
        return self._session

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str],
        timeout: float,
        max_bytes: int,
    ) -> tuple[int, bytes]:
        session = self._open()
        try:
            async with asyncio.timeout(timeout):
                try:
                    return await _post(session, url, body, headers, max_bytes)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                    if isinstance(exc, aiohttp.ClientConnectorError):
                        raise
                    # Most likely a kept-alive connection the node closed as the request
                    # left: once more on a new connection (the request is idempotent: a
                    # node answers a known query from its store).
                    return await _post(session, url, body, headers, max_bytes)
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise httpx.ConnectTimeout("the node could not be reached in time") from exc
            raise httpx.ReadTimeout("the node did not answer in time") from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(type(exc).__name__) from exc
        except aiohttp.ClientOSError as exc:
            raise httpx.ReadError(type(exc).__name__) from exc
        except aiohttp.NonHttpUrlClientError as exc:
            raise httpx.UnsupportedProtocol("not an http(s) URL") from exc
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientResponseError,
            aiohttp.ClientPayloadError,
        ) as exc:
            raise httpx.RemoteProtocolError("the node's answer is not valid HTTP") from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    max_bytes: int,
) -> tuple[int, bytes]:
    # No per-request headers in the common case (no rotation under way): aiohttp then only
    # copies the session's.
    async with session.post(
        url, data=body, headers=headers or None, allow_redirects=False
    ) as response:
        length = response.content_length
        if length is not None and length > max_bytes:
            response.close()  # the connection goes with the unread answer
            raise ResponseTooLarge("the node's answer is too large")
        if length is not None:
            return response.status, await response.read()
        content = bytearray()
        async for chunk in response.content.iter_any():
            content += chunk
            if len(content) > max_bytes:
                response.close()
                raise ResponseTooLarge("the node's answer is too large")
        return response.status, bytes(content)
