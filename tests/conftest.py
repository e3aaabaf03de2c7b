"""Shared fixtures: real SQLite and PostgreSQL databases, a throwaway one per test."""

import gc
import os
import secrets
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 dbname=test user={user} connect_timeout=3"


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """A DSN on the `test` database to create and drop databases with.

    Skips only when CI is unset and the server is absent; under CI a missing server fails.
    """
    for user in ("postgres", "root"):
        dsn = PG_ADMIN_DSN.format(user=user)
        try:
            with psycopg.connect(dsn, autocommit=True):
                return dsn
        except psycopg.OperationalError:
            continue
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL on 127.0.0.1:5432 is required under CI")
    pytest.skip("PostgreSQL on 127.0.0.1:5432 is not running")


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own, dropped afterwards."""
    name = f"sauti_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    user = postgres_admin.split("user=")[1].split(maxsplit=1)[0]
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}"
    finally:
        _collect_abandoned_connections()
        with psycopg.connect(postgres_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _collect_abandoned_connections() -> None:
    """Collect this test's unreachable pooled connections now, before its database is dropped.

    An app built for a test whose lifespan never ran keeps its engine until garbage
    collection; psycopg warns when such a connection is collected while open, and left to
    chance that warning lands in whichever later test is running (warnings are errors).
    Collecting here, with that one warning silenced, ties the cleanup to the test that
    made the connections.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*was deleted while still open", category=ResourceWarning
        )
        gc.collect()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """Each storage test runs on the embedded SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/sauti.sqlite"
    url: str = request.getfixturevalue("postgres_url")
    return url


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    """Debian's Chromium under Playwright (it cannot download its own browsers here).

    `make test` installs Chromium; without it browser tests skip locally and fail under CI.
    Module-scoped: while Playwright's sync API runs it holds an event loop on the main
    thread, and any later `asyncio.run` in the same process would fail; stopping it after
    each browser module keeps every other test's ordering free.
    """
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required under CI (make system-deps installs it)")
        pytest.skip(f"{CHROMIUM} is not installed (make system-deps installs it)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only browser tests pay

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: "Browser") -> Iterator["Page"]:
    """A fresh browser context and page per test (no cookies shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()
