"""Steward page test helpers: a node with a steward account, a cookie-keeping client."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from contracts import signing
from contracts.v1 import QueryRequest
from node.auth import service as auth
from tests.node.conftest import Node, make_node

USERNAME = "asha"
PASSWORD = "lalitpur-data-steward-7"
CANARY_TEXT = "zq-canary-7d41"


class WebClient:
    """A browser stand-in: one httpx client (cookies kept) over the ASGI app, driven in sync.

    It runs on an anyio blocking portal (its own thread and loop), so it also works after a
    Playwright test has left an event loop running in the main thread.
    """

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        self.portal = portal
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://node")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            return await self.client.request(method, url, **kwargs)

        return self.portal.call(send)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def ask(self, node: Node, request: QueryRequest) -> httpx.Response:
        """Send a hub-signed question to the node's query API."""
        return self.post("/v1/queries", json={"jws": signing.sign(request, node.hub_key)})

    def csrf(self, url: str) -> str:
        """The CSRF token of the form on the page at `url`."""
        return csrf_of(self.get(url).text)

    def login(self, username: str = USERNAME, password: str = PASSWORD) -> httpx.Response:
        token = self.csrf("/steward/login")
        return self.post(
            "/steward/login",
            data={"username": username, "password": password, "csrf_token": token},
        )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


@contextmanager
def web_client(app: FastAPI) -> Iterator[WebClient]:
    with start_blocking_portal() as portal:
        client = WebClient(app, portal)
        try:
            yield client
        finally:
            portal.call(client.client.aclose)


def steward_node(home: Path, database_url: str, **overrides: Any) -> Node:
    """A node with the test dataset, agreement mou-1 signed, and a steward account."""
    node = make_node(home, database_url, **overrides)
    auth.create_account(settings=node.settings, username=USERNAME, password=PASSWORD)
    return node
