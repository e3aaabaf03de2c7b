"""`sauti demo --serve` prints one node's steward pages and a login that works there."""

import re
import threading
from pathlib import Path

import httpx
import pytest

from sauti.demo.run import run_demo
from tests.web.node_web_support import csrf_of


@pytest.mark.e2e
def test_demo_prints_a_working_steward_login(tmp_path: Path) -> None:
    stop = threading.Event()
    seen: dict[str, str] = {}
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        password = re.search(r"password for each: (\S+)", line)
        if password:
            seen["password"] = password.group(1)
        pages = re.search(r"node steward pages \((\S+)\): (\S+)/steward/\s+user (\w+)", line)
        if pages:
            seen["node"], seen["url"], seen["user"] = pages.groups()
        if "try: SAUTI_TOKEN" in line:
            try:
                with httpx.Client(base_url=seen["url"], timeout=30) as client:
                    form = client.get("/steward/login")
                    response = client.post(
                        "/steward/login",
                        data={
                            "csrf_token": csrf_of(form.text),
                            "username": seen["user"],
                            "password": seen["password"],
                        },
                    )
                    assert response.status_code == 303, response.text[-1500:]
                    page = client.get("/steward/agreements")
                    seen["status"] = str(page.status_code)
                    seen["agreement"] = str("lnob-basic-services-2026" in page.text)
            finally:
                stop.set()

    run_demo(out=tmp_path / "out", rows=100, serve=True, echo=echo, stop=stop)
    assert seen.get("status") == "200", lines
    assert seen.get("agreement") == "True"
