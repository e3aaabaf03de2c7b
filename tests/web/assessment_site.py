"""The demo federation (`sauti demo`'s own setup: three real nodes, the demo MoU) served on
real sockets, with a web login per role: the assessment pages are tested on what a new user
gets from `sauti demo --serve`, with no other setup."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from sauti.demo.data import demo_nodes
from sauti.demo.run import Federation, federation, hub_web_logins

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Enough rows per node that most of the template's cells clear the demo's minimum cell size.
ROWS = 1500
# The README's round: Nepal and Bangladesh under the demo agreement.
COUNTRIES = ("524", "050")


@dataclass(frozen=True)
class DemoSite:
    fed: Federation
    url: str
    password: str


@contextmanager
def demo_site(work: Path) -> Iterator[DemoSite]:
    nodes = demo_nodes(rows=ROWS)
    with federation(work=work, nodes=nodes) as fed:
        password, _ = hub_web_logins(fed.hub_home, nodes)
        yield DemoSite(fed=fed, url=fed.hub_url, password=password)


def login(client: httpx.Client, site: DemoSite, who: str) -> str:
    """Log `client` in as `who`; the session's CSRF token for its forms."""
    token = CSRF.search(client.get("/login").text)
    assert token is not None
    response = client.post(
        "/login",
        data={"csrf_token": token.group(1), "username": who, "password": site.password},
    )
    assert response.status_code == 303, response.text
    page = client.get("/")
    found = CSRF.search(page.text)
    assert found is not None
    return found.group(1)
