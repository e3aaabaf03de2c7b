"""A steward signs on the node's page, the hub shows it in force, an analyst's query completes.

A real hub and a real node, each on its own uvicorn server and talking over sockets (push
mode), driven only through their pages in Chromium, in English and in Nepali: no command
line step. Every page visited is checked with axe-core at 1280x800 and 390x844, and no page
is wider than its viewport.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from contracts.v1 import AgreementTerms, DatasetRef, Party
from hub.app import create_app as create_hub_app
from hub.auth import organisations, users
from hub.auth.schemas import RoleScope, UserCreate
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from hub.home import init_home as init_hub_home
from hub.settings import HubSettings
from hub.web.i18n import translations as hub_translations
from node import home as node_home
from node.app import create_app as create_node_app
from node.auth import service as node_auth
from node.datasets import service as node_datasets
from node.db import dispose_engines
from node.settings import NodeSettings
from node.web.i18n import translations as node_translations
from sauti.serve import serve_in_thread
from tests.node.conftest import contract, frame
from tests.web.builder_support import choose
from tests.web.guide_shots import languages, shot

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PASSWORD = "lalitpur-data-steward-7"
ORG = "nso-nepal"
NODE_ID = "np-cso"
# What sticks out past the viewport (none when the page is no wider than it).
WIDER = """
document.documentElement.scrollWidth <= window.innerWidth ? [] :
[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(-5).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className)
"""
SIZES = ({"width": 1280, "height": 800}, {"width": 390, "height": 844})


@dataclass(frozen=True)
class Federation:
    hub_url: str
    node_url: str
    api: httpx.Client
    tokens: dict[str, str]
    hub_id: str


def check_page(page: Page, name: str) -> None:
    """No axe-core violation and nothing wider than the viewport, on desktop and on a phone."""
    for size in SIZES:
        page.set_viewport_size(size)
        page.add_script_tag(path=str(AXE))
        result: dict[str, Any] = page.evaluate("axe.run()")
        problems = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
        assert problems == [], f"{name} at {size}: {problems}"
        wide = page.evaluate(WIDER)
        assert wide == [], f"{name} is wider than {size['width']}px: {wide}"
    page.set_viewport_size(SIZES[0])


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=SIZES[0], bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def _people(settings: HubSettings) -> dict[str, str]:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            for org in (ORG, "sec", "cso-nepal"):
                organisations.org_or_create(session, org, actor="test")
                session.commit()
            for name, org, role, node_id in (
                ("amina", ORG, "analyst", None),
                ("sita", "cso-nepal", "steward", NODE_ID),
            ):
                users.create_user(
                    session=session,
                    body=UserCreate(
                        username=name,
                        organisation=org,
                        roles=(RoleScope(role=role, node_id=node_id),),  # type: ignore[arg-type]
                    ),
                    actor="test",
                    password=PASSWORD,
                )
            return {
                "admin": create_token(
                    session=session, name="admin", organisation="sec", role="admin"
                ),
                "secretariat": create_token(
                    session=session, name="sec", organisation="sec", role="secretariat"
                ),
            }
    finally:
        engine.dispose()


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    identity = init_hub_home(tmp_path / "hub")
    hub_settings = HubSettings(
        home=tmp_path / "hub",
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        session_cookie_secure=False,
        node_timeout_seconds=20,
        node_retries=1,
    )
    tokens = _people(hub_settings)
    home = tmp_path / "node"
    node_home.init_home(home, name="CSO Nepal", country="524", node_id=NODE_ID)
    node_settings = NodeSettings(home=home, web_cookie_secure=False)
    node_datasets.import_frame(
        home=home, contract=contract(), frame=frame(), settings=node_settings
    )
    node_auth.create_account(settings=node_settings, username="asha", password=PASSWORD)
    with (
        serve_in_thread(create_hub_app(hub_settings)) as hub_server,
        httpx.Client(base_url=hub_server.url, timeout=30) as api,
    ):
        node_home.pin_hub(
            home, hub_id=identity.hub_id, public_jwk=identity.public_jwk, url=hub_server.url
        )
        with serve_in_thread(create_node_app(node_settings)) as node_server:
            registered = api.post(
                "/v1/nodes",
                json={
                    "node_id": NODE_ID,
                    "name": "CSO Nepal",
                    "country": "524",
                    "url": node_server.url,
                    "public_jwk": node_home.load_identity(home).public_jwk,
                },
                headers={"Authorization": f"Bearer {tokens['admin']}"},
            )
            assert registered.status_code == 201, registered.text
            yield Federation(hub_server.url, node_server.url, api, tokens, identity.hub_id)
    dispose_engines()


def _propose(fed: Federation, agreement_id: str) -> None:
    """The secretariat proposes an agreement naming the node (set-up through the hub's API)."""
    now = datetime.now(UTC)
    terms = AgreementTerms(
        agreement_id=agreement_id,
        version=1,
        title="Disability and services in Lalitpur",
        purpose="Leave no one behind monitoring",
        hub_id=fed.hub_id,
        parties=(
            Party(organisation="LNOB secretariat", role="secretariat"),
            Party(organisation="CSO Nepal", role="cso", country="524", node_id=NODE_ID),
        ),
        datasets=(DatasetRef(name="survey", contract_version=1),),
        measures=("count", "share"),
        columns=("disability",),
        dims=("sex", "district"),
        max_dims=2,
        min_cell_size=0,
        rho_per_query_max=0.5,
        rho_budget=2.0,
        analyst_organisations=(ORG,),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )
    created = fed.api.post(
        "/v1/agreements",
        json=terms.model_dump(mode="json"),
        headers={"Authorization": f"Bearer {fed.tokens['secretariat']}"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "proposed"


def _hub_login(page: Page, fed: Federation, who: str, lang: str) -> None:
    page.goto(f"{fed.hub_url}/login")
    if lang != "en":
        page.locator("#lang-select").select_option(lang)
        page.locator("#lang-select").locator("xpath=ancestor::form").locator("button").click()
        expect(page.locator("html")).to_have_attribute("lang", lang)
    check_page(page, f"hub-login-{lang}")
    page.locator("#username").fill(who)
    page.locator("#password").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)


@pytest.mark.parametrize("lang", languages(("en", "ne")))
def test_steward_signs_on_the_node_then_the_hub_and_an_analyst_use_it(
    page: Page, federation: Federation, lang: str
) -> None:
    fed = federation
    agreement_id = f"lalitpur-{lang}"
    _propose(fed, agreement_id)
    node_t, hub_t = node_translations(lang).gettext, hub_translations(lang).gettext

    # The steward, on the node's own pages, in their language.
    page.goto(f"{fed.node_url}/steward/language?lang={lang}&next=/steward/login")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    check_page(page, f"node-login-{lang}")
    page.locator("#username").fill("asha")
    page.locator("#password").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    page.goto(f"{fed.node_url}/steward/agreements")
    check_page(page, f"node-agreements-{lang}")
    page.locator("#agreement_id").fill(agreement_id)
    page.locator("#agreement_id").locator("xpath=ancestor::form").locator(
        "button[type=submit]"
    ).click()
    expect(page.locator("#t-agg")).to_have_text(node_t("Combining nodes"))
    expect(page.locator("p.anchor")).to_be_visible()
    check_page(page, f"node-review-{lang}")
    shot(page, "steward", "review-terms", lang)
    page.locator("#confirm").check()
    page.locator("#confirm").locator("xpath=ancestor::form").locator("button[type=submit]").click()

    # Signed here, received by the hub, in force: said on the node's page at once.
    expect(page).to_have_url(re.compile(rf"/steward/agreements/{agreement_id}\?done=signed$"))
    expect(page.get_by_text(node_t("The hub has received your signature."))).to_be_visible()
    versions = page.locator("#versions tbody tr")
    expect(versions).to_have_count(1)
    expect(versions.first.locator(".badge.ok").first).to_have_text(node_t("received"))
    expect(versions.first.locator(".badge.ok").last).to_have_text(node_t("in force"))
    check_page(page, f"node-agreement-{lang}")
    shot(page, "steward", "signed", lang)

    # The same steward at the hub sees it in force, version by version.
    _hub_login(page, fed, "sita", lang)
    page.goto(f"{fed.hub_url}/steward")
    card = page.locator("section.card", has_text=agreement_id)
    expect(card.locator("table.versions tbody tr td").last).to_have_text(hub_t("In force"))
    check_page(page, f"hub-steward-{lang}")

    # An analyst's query under it completes, with no command line step anywhere.
    page.context.clear_cookies()
    _hub_login(page, fed, "amina", lang)
    page.goto(f"{fed.hub_url}/analyst?agreement_id={agreement_id}")
    check_page(page, f"hub-analyst-{lang}")
    choose(page, "measure", "count")
    choose(page, "group_by_1", "sex")
    page.locator("#rho").fill("0.1")
    page.locator("#rho").locator("xpath=ancestor::form").locator("button[type=submit]").last.click()
    expect(page.locator("#result-table")).to_be_visible(timeout=30_000)
    check_page(page, f"hub-result-{lang}")
    shot(page, "analyst", "result-under-new-agreement", lang)
