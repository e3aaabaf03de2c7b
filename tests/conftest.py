"""Shared fixtures: real SQLite and PostgreSQL databases, a throwaway one per test."""

import gc
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from argon2 import PasswordHasher
from database_support import PostgresDatabases, Side, SqliteTemplates

from runtime import credentials

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 dbname=test user={user} connect_timeout=3"

# The suite's accounts guard nothing and no test measures argon2's work factor: hash their
# passwords with argon2id's cheapest parameters (a quarter of a CPU second less per login,
# password change and account). Servers started as separate processes keep the default.
credentials.use_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection imported (every module the tests use) out of the collector's way.

    A full collection (each PostgreSQL test's teardown runs one, and the interpreter's own
    oldest-generation ones) walks every tracked object: the loaded modules alone make that
    a fifth of a second a time. Frozen objects are skipped; they live all run anyway.
    """
    gc.collect()
    gc.freeze()


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


@pytest.fixture(scope="session")
def postgres_databases(postgres_admin: str) -> Iterator[PostgresDatabases]:
    """This process's template databases and the thread that drops used databases."""
    databases = PostgresDatabases(postgres_admin)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def database_schema() -> Side | None:
    """Which side's schema a test's fresh database starts with; None: an empty database.

    tests/hub and tests/node override it with their side: their databases are clones of a
    template at head (see `database_support`). Elsewhere a database starts empty, as the
    migration and end-to-end tests need.
    """
    return None


@pytest.fixture
def postgres_url(
    postgres_databases: PostgresDatabases, database_schema: Side | None
) -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own, dropped afterwards."""
    name = postgres_databases.create(database_schema)
    try:
        yield postgres_databases.url(name)
    finally:
        _collect_abandoned_connections()
        postgres_databases.release(name)


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("sqlite-templates"))


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
        path = Path(f"{tmp_path}/sauti.sqlite")
        side: Side | None = request.getfixturevalue("database_schema")
        if side is not None:
            request.getfixturevalue("sqlite_templates").copy_to(side, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    return url


CHROMIUM = "/usr/bin/chromium"
# Debian's `chromium-headless-shell`: the same Blink engine without the full browser around
# it (what Playwright itself runs headless tests in). Measured on the browser modules: a
# fifth to a quarter less CPU than the full Chromium, and the journeys a quarter shorter.
# The guides' pictures (`make guide-shots`) are still taken in the full Chromium.
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"
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
    """Debian's Chromium under Playwright (it cannot download its own browsers here): its
    headless shell where installed, else the full browser.

    `make test` installs both; without either browser tests skip locally and fail under CI.
    Module-scoped: while Playwright's sync API runs it holds an event loop on the main
    thread, and any later `asyncio.run` in the same process would fail; stopping it after
    each browser module keeps every other test's ordering free.
    """
    shots = bool(os.environ.get("SAUTI_GUIDE_SHOTS"))
    found = [b for b in ([] if shots else [HEADLESS_SHELL]) + [CHROMIUM] if os.path.exists(b)]
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required under CI (make system-deps installs it)")
        pytest.skip(f"{CHROMIUM} is not installed (make system-deps installs it)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only browser tests pay

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=found[0], args=CHROMIUM_ARGS)
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
