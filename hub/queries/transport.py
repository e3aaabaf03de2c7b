"""The hub's HTTP client for nodes: one shared client, one connection pool per node.

httpcore's pool scans every connection it holds (and asks each socket whether it has
expired) whenever a request is queued or released, so one pool holding a connection to
each of N nodes makes a fan-out cost O(N^2) socket checks per query: about 3 ms of CPU per
node at 20 nodes, more than signing and verifying together. One pool per node origin keeps
each scan to that node's own few connections. The client (timeouts, headers, one per
process or worker) stays shared, as the federation design asks.
"""

import asyncio

import httpx


class PerOriginTransport(httpx.AsyncBaseTransport):
    """Routes each request to the pool of its origin (scheme, host, port), made on first use."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}
        self._closed = False
        # One TLS context for every pool: building one loads the CA bundle (tens of ms).
        self._tls = httpx.create_ssl_context()

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
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.aclose() for pool in pools))


def node_client(
    *, timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The client a hub process (or Celery worker) uses for every node call; `transport`
    lets tests route node calls in process (e.g. to ASGI node apps)."""
    return httpx.AsyncClient(transport=transport or PerOriginTransport(), timeout=timeout)
