"""`sauti demo --serve` exposes the hub's web pages with a login per role that works."""

import re
import threading
from pathlib import Path

import httpx
import pytest

from sauti.demo.run import run_demo

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.mark.e2e
def test_demo_serves_the_hub_pages_and_its_logins_work(tmp_path: Path) -> None:
    stop = threading.Event()
    seen: dict[str, str] = {}
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        found = re.search(r"hub web pages: (\S+)/login\s+password for each: (\S+)", line)
        if found:
            seen["url"], seen["password"] = found.groups()
        if "try: SAUTI_TOKEN" in line:
            # The last line before the demo waits: the servers are up, check the pages now.
            try:
                with httpx.Client(base_url=seen["url"], timeout=30) as client:
                    token = CSRF.search(client.get("/login").text)
                    assert token is not None
                    response = client.post(
                        "/login",
                        data={
                            "csrf_token": token.group(1),
                            "username": "analyst",
                            "password": seen["password"],
                        },
                    )
                    assert response.status_code == 303
                    page = client.get("/analyst")
                    seen["status"] = str(page.status_code)
                    seen["agreement"] = str("lnob-basic-services-2026" in page.text)
            finally:
                stop.set()

    run_demo(out=tmp_path / "out", rows=100, serve=True, echo=echo, stop=stop)
    assert seen.get("status") == "200", lines
    assert seen.get("agreement") == "True"
    assert any("user steward" in line for line in lines)
