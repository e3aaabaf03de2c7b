"""Steward pages over the ASGI app: login, CSRF, roles, bad input, languages, no raw values."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from contracts import signing
from node.agreements import service as agreements
from node.audit import service as audit
from node.auth import service as auth
from node.datasets import service as datasets
from node.db import dispose_engines
from node.web import session as web_session
from runtime import credentials
from tests.node.conftest import Node, frame, hub_signed, terms
from tests.web.node_web_support import (
    CANARY_TEXT,
    PASSWORD,
    USERNAME,
    WebClient,
    csrf_of,
    steward_node,
    web_client,
)

PAGES = (
    "/steward/",
    "/steward/datasets",
    "/steward/datasets/survey/versions/1",
    "/steward/datasets/survey/contracts/1",
    "/steward/agreements",
    "/steward/agreements/mou-1",
    "/steward/agreements/mou-1/suspend",
    "/steward/agreements/mou-1/revoke",
    "/steward/requests",
    "/steward/password",
)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = steward_node(tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite")
    yield made
    dispose_engines()


@pytest.fixture
def any_db_steward(tmp_path: Path, db_url: str) -> Iterator[tuple[Node, WebClient]]:
    """A logged-in steward on a node whose database is SQLite, then PostgreSQL."""
    made = steward_node(tmp_path / "node", db_url)
    with web_client(made.client.app) as client:
        assert client.login().status_code == 303
        yield made, client
    dispose_engines()


@pytest.fixture
def client(node: Node) -> Iterator[WebClient]:
    with web_client(node.client.app) as c:
        yield c


@pytest.fixture
def steward(client: WebClient) -> WebClient:
    assert client.login().status_code == 303
    return client


def _actions(node: Node) -> list[str]:
    return [e.action for e in audit.entries(database_url=node.settings.db_url)]


def test_every_page_needs_a_login(client: WebClient) -> None:
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 303, page
        assert response.headers["location"] == f"/steward/login?next={page}"
    for page in ("/steward/logout", "/steward/agreements/mou-1/revoke", "/steward/agreements/sign"):
        assert client.post(page, data={"csrf_token": "x"}).status_code == 303


def test_login_then_every_page_renders_with_security_headers(
    any_db_steward: tuple[Node, WebClient],
) -> None:
    _node, steward = any_db_steward
    for page in PAGES:
        response = steward.get(page)
        assert response.status_code == 200, (page, response.text[:500])
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        assert '<html lang="en">' in response.text
        assert "<main" in response.text


def test_session_cookie_flags(client: WebClient) -> None:
    response = client.login()
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("sauti_node_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/steward" in cookie
    assert PASSWORD not in cookie


def test_bad_password_is_refused_and_locks_the_account(node: Node, client: WebClient) -> None:
    for _ in range(node.settings.login_max_failures):
        response = client.login(password="not-the-password-at-all")
        assert response.status_code == 401
        # Locking answers as any failure does: the page never tells a name exists.
        assert "The user name, password or one-time code is wrong." in response.text
    assert "locked" not in response.text
    assert "sauti_node_session" not in response.headers.get("set-cookie", "")
    # Locked: even the right password is refused now.
    assert client.login().status_code == 401
    assert client.get("/steward/").status_code == 303
    assert "steward.locked" in _actions(node)


def test_login_form_needs_its_csrf_token(client: WebClient) -> None:
    response = client.post(
        "/steward/login", data={"username": USERNAME, "password": PASSWORD, "csrf_token": "x"}
    )
    assert response.status_code == 403
    assert "csrf_failed" in response.text
    assert client.get("/steward/").status_code == 303


def test_state_changes_without_the_csrf_token_are_refused(node: Node, steward: WebClient) -> None:
    for token in ("", "forged-token"):
        response = steward.post(
            "/steward/agreements/mou-1/revoke", data={"csrf_token": token, "reason": "x"}
        )
        assert response.status_code == 403
        assert "csrf_failed" in response.text
    document = hub_signed(terms(node.identity.node_id, agreement_id="mou-2"), node.hub_key)
    response = steward.post(
        "/steward/agreements/sign",
        data={"csrf_token": "", "document": document.model_dump_json(), "confirm": "yes"},
    )
    assert response.status_code == 403
    assert steward.post("/steward/logout", data={}).status_code == 403
    assert [
        a.agreement_id for a in agreements.list_agreements(home=node.home, settings=node.settings)
    ] == ["mou-1"]
    assert agreements.list_agreements(home=node.home, settings=node.settings)[0].status == "active"
    assert steward.ask(node, node.request()).status_code == 200


def test_api_tokens_and_forged_cookies_do_not_open_pages(node: Node, client: WebClient) -> None:
    token = auth.create_token(database_url=node.settings.db_url, name="script")
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/steward/", headers=bearer).status_code == 303
    client.client.cookies.set("sauti_node_session", token, path="/steward")
    assert client.get("/steward/").status_code == 303
    # A well-signed cookie around an API token (not a login session) is refused too.
    forged = web_session._serializer(node.settings, web_session._SALT).dumps(
        {"t": token, "c": "csrf"}
    )
    client.client.cookies.set("sauti_node_session", forged, path="/steward")
    assert client.get("/steward/").status_code == 303


def test_reset_password_confines_the_steward_to_the_password_page(
    node: Node, client: WebClient
) -> None:
    temporary = auth.reset_password(settings=node.settings, username=USERNAME)
    response = client.login(password=temporary)
    assert response.headers["location"] == "/steward/password"
    for page in ("/steward/", "/steward/agreements/mou-1"):
        assert client.get(page).headers["location"] == "/steward/password"
    form = client.get("/steward/password")
    assert "Your password was reset" in form.text
    token = csrf_of(form.text)
    weak = client.post(
        "/steward/password",
        data={"csrf_token": token, "current_password": temporary, "new_password": "short"},
    )
    assert weak.status_code == 422
    assert "at least 12 characters" in weak.text
    done = client.post(
        "/steward/password",
        data={"csrf_token": token, "current_password": temporary, "new_password": PASSWORD},
    )
    assert done.status_code == 303
    assert client.get("/steward/").status_code == 200


def test_logout_ends_the_session_on_the_server(node: Node, steward: WebClient) -> None:
    cookie = steward.client.cookies.get("sauti_node_session", path="/steward")
    assert cookie
    response = steward.post("/steward/logout", data={"csrf_token": steward.csrf("/steward/")})
    assert response.headers["location"] == "/steward/login"
    # Replaying the old cookie does not work: the session token is revoked at the node.
    steward.client.cookies.set("sauti_node_session", cookie, path="/steward")
    assert steward.get("/steward/").status_code == 303
    assert "steward.logout" in _actions(node)


def test_review_sign_suspend_resume_revoke(any_db_steward: tuple[Node, WebClient]) -> None:
    node, steward = any_db_steward
    proposed = hub_signed(terms(node.identity.node_id, agreement_id="mou-2"), node.hub_key)
    token = steward.csrf("/steward/agreements")
    review = steward.post(
        "/steward/agreements/review",
        data={"csrf_token": token, "document": proposed.model_dump_json()},
    )
    assert review.status_code == 200, review.text
    text = re.sub(r"\s+", " ", review.text)
    assert "Only analysts of these organisations: NSO Nepal." in text
    assert "One question may cost at most ρ = 1." in text
    assert "This node grants at most ρ = 5 in total" in text
    assert "So at least 5 questions at the highest cost fit in the budget" in text
    assert signing.digest(proposed.terms) in text
    # Nothing is signed by reviewing.
    assert len(agreements.list_agreements(home=node.home, settings=node.settings)) == 1
    unconfirmed = steward.post(
        "/steward/agreements/sign",
        data={"csrf_token": token, "document": proposed.model_dump_json()},
    )
    assert unconfirmed.status_code == 422
    signed = steward.post(
        "/steward/agreements/sign",
        data={
            "csrf_token": csrf_of(review.text),
            "document": proposed.model_dump_json(),
            "confirm": "yes",
        },
    )
    # No hub URL is pinned here: signed and in force at the node, the hub is told later.
    assert signed.headers["location"] == "/steward/agreements/mou-2?done=signed_pending"
    page = steward.get(signed.headers["location"]).text
    assert "The hub could not be reached yet" in page
    assert "sent again until the hub confirms" in page
    assert [
        a.agreement_id for a in agreements.list_agreements(home=node.home, settings=node.settings)
    ] == [
        "mou-1",
        "mou-2",
    ]
    for action, status in (("suspend", "suspended"), ("resume", "active"), ("revoke", "revoked")):
        confirm = steward.get(f"/steward/agreements/mou-1/{action}")
        assert confirm.status_code == 200
        done = steward.post(
            f"/steward/agreements/mou-1/{action}",
            data={"csrf_token": csrf_of(confirm.text), "reason": "review"},
        )
        assert done.headers["location"] == f"/steward/agreements/mou-1?done={status}"
        assert (
            agreements.list_agreements(home=node.home, settings=node.settings)[0].status == status
        )
    refused = steward.ask(node, node.request())
    assert refused.json()["error"]["code"] == "agreement_revoked"
    page = steward.get("/steward/agreements/mou-1")
    assert "Revocation is final" in page.text
    assert "Refused: the agreement is revoked at this node" in steward.get("/steward/requests").text
    fragment = steward.get("/steward/requests?agreement_id=mou-2", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="decisions">')
    assert "<html" not in fragment.text
    again = steward.post(
        "/steward/agreements/mou-1/resume", data={"csrf_token": csrf_of(page.text)}
    )
    assert (again.status_code, "agreement_revoked" in again.text) == (403, True)


def test_bad_form_input_gets_a_clear_4xx_page(node: Node, steward: WebClient) -> None:
    token = steward.csrf("/steward/agreements")
    cases = [
        ({"document": "{not json"}, 422, "form_invalid"),
        ({"document": ""}, 422, "form_invalid"),
        ({"document": '{"terms": 1}'}, 422, "form_invalid"),
    ]
    other = hub_signed(terms("another-node", agreement_id="mou-3"), node.hub_key)
    cases.append(({"document": other.model_dump_json()}, 422, "agreement_invalid"))
    for fields, status, code in cases:
        response = steward.post("/steward/agreements/review", data={"csrf_token": token, **fields})
        assert response.status_code == status, (fields, response.text[:300])
        assert code in response.text
        assert "Traceback" not in response.text
        assert 'role="alert"' in response.text
    # Fetching from the hub needs a hub URL pinned; this node has none.
    fetched = steward.post(
        "/steward/agreements/review", data={"csrf_token": token, "agreement_id": "mou-9"}
    )
    assert (fetched.status_code, "hub_unreachable" in fetched.text) == (502, True)
    assert "The hub could not be reached" in fetched.text
    assert steward.get("/steward/agreements/no-such").status_code == 403
    assert steward.get("/steward/datasets/Bad..Name/versions/1").status_code == 422
    assert steward.get("/steward/datasets/survey/versions/99").status_code == 422
    assert steward.get("/steward/agreements/mou-1/explode").status_code == 422
    assert steward.get("/steward/language?lang=xx").status_code == 422
    assert len(agreements.list_agreements(home=node.home, settings=node.settings)) == 1


def test_hostile_text_from_the_hub_is_escaped(node: Node, steward: WebClient) -> None:
    proposed = hub_signed(
        terms(node.identity.node_id, agreement_id="mou-x", title="<script>alert(1)</script>"),
        node.hub_key,
    )
    response = steward.post(
        "/steward/agreements/review",
        data={
            "csrf_token": steward.csrf("/steward/agreements"),
            "document": proposed.model_dump_json(),
        },
    )
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "&lt;script&gt;alert(1)" in response.text


def test_language_cookie_and_accept_language(steward: WebClient) -> None:
    assert (
        '<html lang="bn">'
        in steward.get("/steward/", headers={"Accept-Language": "bn-BD,en;q=0.5"}).text
    )
    assert (
        '<html lang="en">'
        in steward.get("/steward/", headers={"Accept-Language": "fr,de;q=0.8"}).text
    )
    switched = steward.get("/steward/language?lang=sw&next=/steward/datasets")
    assert switched.headers["location"] == "/steward/datasets"
    page = steward.get("/steward/datasets", headers={"Accept-Language": "bn"})
    assert '<html lang="sw">' in page.text
    assert "Seti za data" in page.text  # "Datasets" in Swahili
    # The switch only sends the browser back to a steward page, never to another site.
    for target in ("https://evil.example/", "//evil.example/", "/v1/info"):
        away = steward.get(f"/steward/language?lang=ne&next={target}")
        assert away.headers["location"] == "/steward/"


def test_nepali_and_bengali_pages_use_their_digits(steward: WebClient) -> None:
    for lang, budget, word in (("ne", "५.०००", "सम्झौताहरू"), ("bn", "৫.০০০", "চুক্তিসমূহ")):
        steward.get(f"/steward/language?lang={lang}")
        page = steward.get("/steward/agreements").text
        assert f'<html lang="{lang}">' in page
        assert budget in page  # the budget of 5, three decimals, in the script's own digits
        assert word in page


def test_no_raw_value_on_any_page(tmp_path: Path) -> None:
    data = frame().with_columns(
        pl.Series("comment", [CANARY_TEXT] * 300), pl.Series("phone", [CANARY_TEXT + "1"] * 300)
    )
    node = steward_node(tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite", data=data)
    with web_client(node.client.app) as client:
        assert client.ask(node, node.request()).status_code == 200
        refused = node.request(node.spec(group_by=("phone",)))
        assert client.ask(node, refused).status_code >= 400
        assert client.login().status_code == 303
        client.get("/steward/language?lang=en")
        for page in (*PAGES, "/steward/requests?agreement_id=mou-1"):
            response = client.get(page)
            assert response.status_code == 200, page
            assert CANARY_TEXT not in response.text, page
    dispose_engines()


def test_script_fonts_are_served_without_a_login(client: WebClient) -> None:
    for name in ("devanagari.ttf", "bengali.ttf"):
        response = client.get(f"/steward/fonts/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "font/ttf"
        assert "immutable" in response.headers["cache-control"]
        assert response.headers["content-encoding"] == "gzip"
        assert response.content[:4] == b"\x00\x01\x00\x00"  # a TrueType file, once unzipped
    assert client.get("/steward/fonts/..%2F..%2Fnode.sqlite").status_code in (404, 422)
    assert client.get("/steward/fonts/other.ttf").status_code == 422
    assert client.get("/steward/static/style.css").status_code == 200


def _csv(data: pl.DataFrame) -> bytes:
    return data.write_csv().encode()


def test_check_then_import_an_upload(node: Node, steward: WebClient) -> None:
    token = steward.csrf("/steward/datasets")
    good = {"upload": ("export.csv", _csv(frame(rows=50, seed=7)), "text/csv")}
    checked = steward.post(
        "/steward/datasets/import",
        data={"csrf_token": token, "dataset": "survey", "mode": "check"},
        files=good,
    )
    assert checked.status_code == 200, checked.text[-800:]
    assert "Nothing was stored" in checked.text
    assert len(datasets.list_versions(home=node.home)) == 1
    imported = steward.post(
        "/steward/datasets/import",
        data={"csrf_token": token, "dataset": "survey", "mode": "import"},
        files=good,
    )
    assert imported.status_code == 200
    assert "Imported." in imported.text
    assert [v.version for v in datasets.list_versions(home=node.home)] == [1, 2]
    assert any(
        e.action == "dataset_imported" and e.actor == f"steward:{USERNAME}"
        for e in audit.entries(database_url=node.settings.db_url)
    )


def test_a_bad_upload_shows_its_report_and_stores_nothing(node: Node, steward: WebClient) -> None:
    token = steward.csrf("/steward/datasets")
    bad = frame(rows=20).with_columns(
        pl.Series("sex", [CANARY_TEXT] * 20), pl.Series("age", [500] * 20)
    )
    response = steward.post(
        "/steward/datasets/import",
        data={"csrf_token": token, "dataset": "survey", "mode": "import"},
        files={"upload": ("bad.csv", _csv(bad), "text/csv")},
    )
    assert response.status_code == 422
    assert "nothing was stored" in response.text
    assert "<code>" in response.text  # the rules that failed
    assert CANARY_TEXT not in response.text
    assert len(datasets.list_versions(home=node.home)) == 1
    no_csrf = steward.post(
        "/steward/datasets/import",
        data={"dataset": "survey", "mode": "import"},
        files={"upload": ("export.csv", _csv(frame(rows=20)), "text/csv")},
    )
    assert no_csrf.status_code == 403
    unknown = steward.post(
        "/steward/datasets/import",
        data={"csrf_token": token, "dataset": "nosuch", "mode": "check"},
        files={"upload": ("export.csv", _csv(frame(rows=20)), "text/csv")},
    )
    assert unknown.status_code == 422
    assert "unknown_dataset" in unknown.text
    assert len(datasets.list_versions(home=node.home)) == 1


def test_disabling_the_account_ends_its_browser_session(node: Node, steward: WebClient) -> None:
    assert steward.get("/steward/").status_code == 200
    auth.set_disabled(settings=node.settings, username=USERNAME, disabled=True)
    assert steward.get("/steward/").status_code == 303
    assert steward.login().status_code == 401


def test_an_account_with_totp_needs_its_code(node: Node, client: WebClient) -> None:
    setup = auth.totp_begin(settings=node.settings, username=USERNAME, issuer="test")
    now = datetime.now(UTC)
    auth.totp_confirm(
        settings=node.settings, username=USERNAME, code=credentials.totp_code(setup.secret, now=now)
    )
    assert client.login().status_code == 401
    token = client.csrf("/steward/login")
    later = credentials.totp_code(setup.secret, now=now + timedelta(seconds=30))
    response = client.post(
        "/steward/login",
        data={"username": USERNAME, "password": PASSWORD, "totp": later, "csrf_token": token},
    )
    assert response.status_code == 303
    assert client.get("/steward/").status_code == 200
