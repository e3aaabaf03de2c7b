"""The hub's web pages over the real app: login, roles, CSRF, forms, language, downloads."""

import math
import re
import sys
from collections.abc import Callable
from csv import reader
from io import BytesIO, StringIO
from pathlib import Path

import pytest
from openpyxl import load_workbook

sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))

from hub_support import (
    ANALYST_ORG,
    AppClient,
    Hub,
    SimNode,
    hub_home,
    make_hub,
    make_terms,
    sim_nodes,
)

from hub.app import create_app
from hub.auth import organisations, users
from hub.auth.schemas import RoleScope, UserCreate
from hub.db import init_db, make_engine
from hub.home import HubIdentity
from hub.settings import HubSettings, OidcProviderSettings

__all__ = ["hub_home", "make_hub", "sim_nodes"]  # fixtures, found by name

PASSWORD = "correct-horse-battery-42"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Who is who: user name -> (organisation, roles as (role, node_id)).
PEOPLE: dict[str, tuple[str, tuple[tuple[str, str | None], ...]]] = {
    "amina": (ANALYST_ORG, (("analyst", None),)),
    "grace": ("sec", (("secretariat", None),)),
    "tuan": ("sec", (("auditor", None),)),
    "sita": ("CSO ke-a", (("steward", "ke-a"),)),
}


@pytest.fixture
def hub_settings(tmp_path: Path, hub_home: HubIdentity) -> HubSettings:
    # Plain HTTP in tests: a Secure cookie would not come back over http://hub.test.
    return HubSettings(
        home=tmp_path / "hub",
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        node_timeout_seconds=5,
        node_retries=1,
        node_backoff_seconds=0.001,
        session_cookie_secure=False,
        query_wait_seconds=5,
    )


def add_people(settings: HubSettings) -> None:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            for name, (org, roles) in PEOPLE.items():
                if organisations.org_row(session, org) is None:
                    organisations.org_or_create(session, org, actor="test")
                    session.commit()
                users.create_user(
                    session=session,
                    body=UserCreate(
                        username=name,
                        organisation=org,
                        roles=tuple(RoleScope(role=r, node_id=n) for r, n in roles),  # type: ignore[arg-type]
                    ),
                    actor="test",
                    password=PASSWORD,
                )
    finally:
        engine.dispose()


@pytest.fixture
def web(make_hub: Callable[..., Hub], sim_nodes: list[SimNode]) -> Hub:
    hub = make_hub(sim_nodes)
    for node in sim_nodes:
        hub.register(node)
    assert hub.agree(make_terms(sim_nodes))["status"] == "active"
    add_people(hub.settings)
    return hub


def login(hub: Hub, who: str, password: str = PASSWORD) -> str:
    """Log in through the form; the session's CSRF token (read from a page)."""
    hub.client._client.cookies.clear()
    page = hub.client.get("/login")
    token = CSRF.search(page.text)
    assert token is not None
    response = hub.client.post(
        "/login",
        data={"csrf_token": token.group(1), "username": who, "password": password, "next": "/"},
    )
    assert response.status_code == 303, response.text
    home = hub.client.get("/")
    assert home.status_code == 200
    found = CSRF.search(home.text)
    assert found is not None
    return found.group(1)


PAGES = {
    "/analyst": "analyst",
    "/steward": "steward",
    "/secretariat": "secretariat",
    "/secretariat/agreements/new": "secretariat",
    "/audit": "auditor",
}
# What the builder's options were built for (agreement|version|dataset), sent with each run.
OPTIONS_FOR = "lnob-2026|1|lnob_household"
OWNER = {"analyst": "amina", "steward": "sita", "secretariat": "grace", "auditor": "tuan"}


def test_pages_need_login_and_redirect_to_it(web: Hub) -> None:
    for path in ["/", *PAGES]:
        response = web.client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


def test_each_page_opens_for_its_role_and_is_refused_to_others(web: Hub) -> None:
    for who in OWNER.values():
        login(web, who)
        for path, role in PAGES.items():
            response = web.client.get(path)
            if OWNER[role] == who:
                assert response.status_code == 200, (who, path, response.text[:500])
                assert "<main" in response.text
            else:
                assert response.status_code == 403, (who, path)
                assert "forbidden" in response.text
                assert "text/html" in response.headers["content-type"]


def test_login_failures_show_a_message_on_the_page(web: Hub) -> None:
    page = web.client.get("/login")
    token = CSRF.search(page.text)
    assert token is not None
    wrong = web.client.post(
        "/login",
        data={"csrf_token": token.group(1), "username": "amina", "password": "not-the-password"},
    )
    assert wrong.status_code == 401
    assert "User name, password or one-time code is wrong." in wrong.text
    web.client._client.cookies.clear()
    forged = web.client.post(
        "/login", data={"csrf_token": "forged", "username": "amina", "password": PASSWORD}
    )
    assert forged.status_code == 403
    assert "login form expired" in forged.text


def test_state_changes_without_the_csrf_token_are_refused(web: Hub) -> None:
    token = login(web, "grace")
    refused = web.client.post("/secretariat/enrollment-tokens", data={"note": "x"})
    assert refused.status_code == 403
    assert "csrf_failed" in refused.text
    wrong = web.client.post("/logout", data={"csrf_token": "nope"})
    assert wrong.status_code == 403
    issued = web.client.post(
        "/secretariat/enrollment-tokens", data={"csrf_token": token, "note": "Lalitpur"}
    )
    assert issued.status_code == 200
    assert "shown only once" in issued.text
    assert re.search(r'id="token">[^<]+\.', issued.text)


def test_bad_form_input_gives_a_clear_message(web: Hub) -> None:
    token = login(web, "amina")
    bad_rho = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-2026",
            "dataset": "lnob_household",
            "options_for": OPTIONS_FOR,
            "measure": "count",
            "rho": "lots",
        },
    )
    assert bad_rho.status_code == 422
    assert "The query was not run." in bad_rho.text
    assert "“lots” is not a number above zero." in bad_rho.text
    assert 'id="err-rho"' in bad_rho.text
    over_cap = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-2026",
            "dataset": "lnob_household",
            "options_for": OPTIONS_FOR,
            "measure": "count",
            "group_by_1": "sex",
            "rho": "0.9",
        },
    )
    assert over_cap.status_code == 403
    assert "The query was not run." in over_cap.text
    half_filter = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-2026",
            "dataset": "lnob_household",
            "options_for": OPTIONS_FOR,
            "measure": "count",
            "filter_column_1": "sex",
            "rho": "0.1",
        },
    )
    assert half_filter.status_code == 422
    assert "Choose at least one level to keep" in half_filter.text
    assert 'aria-describedby="err-filter_levels_1"' in half_filter.text

    sec_token = login(web, "grace")
    draft = web.client.post(
        "/secretariat/agreements",
        data={"csrf_token": sec_token, "agreement_id": "Bad Id", "parties": "only-one-field"},
    )
    assert draft.status_code == 422
    assert 'aria-describedby="err-parties parties-hint"' in draft.text
    assert "Each line should read: organisation | role | country | node" in draft.text
    assert "check these fields" not in draft.text
    bad_token = web.client.post(
        "/secretariat/enrollment-tokens",
        data={"csrf_token": sec_token, "node_id": "Bad Id!", "ttl_hours": "48"},
    )
    assert bad_token.status_code == 422
    assert 'aria-describedby="err-node_id"' in bad_token.text
    assert 'aria-describedby="err-ttl_hours"' not in bad_token.text
    assert 'value="Bad Id!"' in bad_token.text  # nothing typed is lost


def test_analyst_runs_a_query_and_downloads_it(web: Hub) -> None:
    token = login(web, "amina")
    form = web.client.get("/analyst")
    assert 'name="group_by_1"' in form.text
    assert "Budget left at the hub" in form.text
    response = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-2026",
            "dataset": "lnob_household",
            "options_for": OPTIONS_FOR,
            "measure": "count",
            "group_by_1": "sex",
            "rho": "0.1",
        },
    )
    assert response.status_code == 303
    page_url = response.headers["location"]
    page = web.client.get(page_url, params={})
    assert page.status_code == 200
    progress = web.client.get(page_url + "/progress")
    for _ in range(50):
        if "hx-trigger" not in progress.text:
            break
        progress = web.client.get(page_url + "/progress")
    assert 'id="result-table"' in progress.text
    assert "frame-ancestors 'none'" in progress.headers["content-security-policy"]
    assert 'id="result-chart"' in progress.text
    assert '<line class="whisker"' in progress.text
    # Each node's guarantee: rho, epsilon at delta, mechanism and noise scale.
    epsilon = 0.1 + 2 * math.sqrt(0.1 * math.log(1e7))
    assert "ε = 2.64" in progress.text
    assert "δ = 1e-07" in progress.text
    assert "discrete Gaussian, σ = 2<" in progress.text
    csv = web.client.get(page_url + "/result.csv")
    assert csv.status_code == 200
    rows = list(reader(StringIO(csv.content.decode("utf-8-sig"))))
    assert rows[0] == [
        "sex",
        "estimate",
        "ci95_low",
        "ci95_high",
        "status",
        "suppression_reason",
        "nodes",
        "rho",
        "epsilon",
        "delta",
        "mechanism",
        "noise_scale",
    ]
    assert {row[0] for row in rows[1:]} == {"female", "male"}
    for row in rows[1:]:
        assert float(row[7]) == 0.1
        assert float(row[8]) == pytest.approx(epsilon)
        assert float(row[9]) == 1e-7
        assert row[10:] == ["discrete_gaussian", "2.0"]
    xlsx = web.client.get(page_url + "/result.xlsx")
    book = load_workbook(BytesIO(xlsx.content))
    assert book["result"]["A1"].value == "sex"
    assert book["result"].max_row == 3
    about = {row[0]: row[1] for row in book["query"].iter_rows(values_only=True)}
    for node_id in web.nodes:
        assert f"epsilon {epsilon!r} at delta 1e-07" in about[f"node {node_id}"]
    # SDMX needs one area per cell: refused with a clear page here, written when by country.
    mixed = web.client.get(page_url + "/result.sdmx.csv")
    assert mixed.status_code == 422
    assert "sdmx_mixed_areas" in mixed.text
    by_country = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-2026",
            "dataset": "lnob_household",
            "options_for": OPTIONS_FOR,
            "measure": "count",
            "group_by_1": "country",
            "group_by_2": "sex",
            "rho": "0.1",
        },
    )
    url = by_country.headers["location"]
    for _ in range(50):
        if "hx-trigger" not in web.client.get(url + "/progress").text:
            break
    sdmx = web.client.get(url + "/result.sdmx.csv")
    assert sdmx.status_code == 200, sdmx.text[:300]
    assert sdmx.text.splitlines()[0].startswith("STRUCTURE,")


def test_language_switch_and_accept_language(web: Hub) -> None:
    nepali = web.client.get("/login", headers={"Accept-Language": "ne-NP,ne;q=0.9"})
    assert 'lang="ne"' in nepali.text
    assert "लग इन" in nepali.text
    switched = web.client.get("/language", params={"lang": "sw", "next": "/login"})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/login"
    assert 'lang="sw"' in web.client.get("/login").text
    outside = web.client.get("/language", params={"lang": "vi", "next": "//evil.example"})
    assert outside.headers["location"] == "/"


def test_user_values_are_escaped(web: Hub) -> None:
    login(web, "tuan")
    page = web.client.get("/audit", params={"actor": "<script>alert(1)</script>"})
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text


def test_login_page_offers_each_configured_identity_provider(
    web: Hub, hub_settings: HubSettings
) -> None:
    settings = hub_settings.model_copy(
        update={
            "oidc_providers": (
                OidcProviderSettings(
                    name="kenya-gov",
                    title="Kenya Government ID",
                    issuer="https://id.test",
                    client_id="sauti",
                ),
            )
        }
    )
    client = AppClient(create_app(settings))
    try:
        page = client.get("/login", params={"next": "/audit"})
        assert "Log in with Kenya Government ID" in page.text
        assert 'href="/v1/auth/oidc/kenya-gov/login?next=/audit"' in page.text
    finally:
        client.close()


def test_results_of_another_organisation_and_ended_sessions(web: Hub) -> None:
    token = login(web, "amina")
    response = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-2026",
            "dataset": "lnob_household",
            "options_for": OPTIONS_FOR,
            "measure": "count",
            "rho": "0.1",
        },
    )
    url = response.headers["location"]
    engine = make_engine(web.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            organisations.org_or_create(session, "other-org", actor="test")
            users.create_user(
                session=session,
                body=UserCreate(
                    username="omar", organisation="other-org", roles=(RoleScope(role="analyst"),)
                ),
                actor="test",
                password=PASSWORD,
            )
    finally:
        engine.dispose()
    login(web, "omar")
    other = web.client.get(url)
    assert other.status_code == 403
    assert "text/html" in other.headers["content-type"]
    web.client._client.cookies.clear()
    polled = web.client.get(url + "/progress", headers={"HX-Request": "true"})
    assert polled.status_code == 401
    assert polled.headers["HX-Redirect"].startswith("/login?next=")


def test_secretariat_drafts_and_proposes_an_agreement(web: Hub) -> None:
    token = login(web, "grace")
    form = {
        "csrf_token": token,
        "agreement_id": "mou-web-1",
        "title": "Health access monitoring",
        "purpose": "Track access to health services by group",
        "parties": "LNOB secretariat | secretariat\nCSO ke-a | cso | 404 | ke-a",
        "datasets": "lnob_household:1",
        "measures": ["count", "share"],
        "columns": "health_access",
        "dims": "group, sex",
        "rho_per_query_max": "0.1",
        "rho_budget": "2",
        "analyst_organisations": ANALYST_ORG,
        "valid_from": "2026-01-01",
        "valid_until": "2027-01-01",
    }
    draft = web.client.post("/secretariat/agreements", data=form)
    assert draft.status_code == 200, draft.text[-800:]
    assert "The terms in plain language" in draft.text
    proposed = web.client.post(
        "/secretariat/agreements/mou-web-1/versions/1/propose", data={"csrf_token": token}
    )
    assert proposed.status_code == 303
    overview = web.client.get("/secretariat")
    assert "mou-web-1" in overview.text
    assert "Awaiting signatures" in overview.text


def test_a_reset_password_must_be_changed_first(web: Hub) -> None:
    engine = make_engine(web.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            temporary = users.reset_password(
                session=session, username="amina", actor="test"
            ).temporary_password
    finally:
        engine.dispose()
    web.client._client.cookies.clear()
    page = web.client.get("/login")
    token = CSRF.search(page.text)
    assert token is not None
    response = web.client.post(
        "/login",
        data={"csrf_token": token.group(1), "username": "amina", "password": temporary},
    )
    assert response.headers["location"] == "/password"
    assert web.client.get("/analyst").headers["location"] == "/password"
    form = web.client.get("/password")
    csrf = CSRF.search(form.text)
    assert csrf is not None
    mismatch = web.client.post(
        "/password",
        data={
            "csrf_token": csrf.group(1),
            "current_password": temporary,
            "new_password": "a-new-long-passphrase-7",
            "confirm_password": "something-else-entirely",
        },
    )
    assert mismatch.status_code == 422
    assert "The two new passwords differ." in mismatch.text
    changed = web.client.post(
        "/password",
        data={
            "csrf_token": csrf.group(1),
            "current_password": temporary,
            "new_password": "a-new-long-passphrase-7",
            "confirm_password": "a-new-long-passphrase-7",
        },
    )
    assert changed.status_code == 303
    assert web.client.get("/analyst").status_code == 200


def test_reconcile_refuses_what_is_not_a_node_export(web: Hub) -> None:
    token = login(web, "tuan")
    empty = web.client.post("/audit/reconcile", data={"csrf_token": token})
    assert empty.status_code == 422
    assert "choose at least one node’s audit export file" in empty.text.replace("'", "’")
    garbage = web.client.post(
        "/audit/reconcile",
        data={"csrf_token": token},
        files={"exports": ("node.jsonl", b"not json\n", "application/x-ndjson")},
    )
    assert garbage.status_code == 422
    assert "“node.jsonl” is not a node audit export" in garbage.text
    hub_export = web.client.get("/v1/audit/export", params={"format": "jsonl"})
    assert hub_export.status_code == 200
    own = web.client.post(
        "/audit/reconcile",
        data={"csrf_token": token},
        files={"exports": ("hub.jsonl", hub_export.content, "application/x-ndjson")},
    )
    assert own.status_code == 422
    assert "upload the nodes’ exports only" in own.text.replace("'", "’")
    no_token = web.client.post(
        "/audit/reconcile", files={"exports": ("n.jsonl", b"{}", "application/x-ndjson")}
    )
    assert no_token.status_code == 403


def test_audit_page_shows_whose_checkpoints_are_overdue(
    web: Hub, hub_settings: HubSettings
) -> None:
    spec = {"agreement_id": "lnob-2026", "dataset": "lnob_household", "measure": "count"}
    asked = web.client.post(
        "/v1/queries", json={**spec, "rho": 0.2}, headers=web.headers("analyst")
    )
    assert asked.status_code == 201, asked.text
    login(web, "tuan")
    page = web.client.get("/audit/verify").text
    table = page.split('id="checkpoint-status"')[1].split("</table>")[0]
    assert table.count("Up to date") == 3  # one answer each: far within 200 entries
    # With a strict threshold the same answers make every node overdue (none published).
    strict = Hub(
        client=AppClient(
            create_app(hub_settings.model_copy(update={"checkpoint_overdue_entries": 1}))
        ),
        settings=hub_settings,
        identity=web.identity,
        nodes=web.nodes,
        tokens=web.tokens,
    )
    try:
        login(strict, "tuan")
        page = strict.client.get("/audit/verify").text
        table = page.split('id="checkpoint-status"')[1].split("</table>")[0]
        assert table.count("Overdue") == 3
        assert all(node_id in table for node_id in web.nodes)
    finally:
        strict.client.close()
