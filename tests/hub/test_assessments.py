"""Assessment rounds end to end over three real in-process nodes (small data, SQLite).

Storage-specific paths (planning sums, answers) also run on PostgreSQL through `db_url`.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assessment_support import AGREEMENT, CANARY, SMALL_TEMPLATE, Federation, start_federation
from hub_support import Hub
from sqlalchemy import func, select

from hub.assessments.models import RoundRow
from hub.db import init_db, make_engine
from hub.home import HubIdentity
from hub.queries.models import QueryRow
from node.db import dispose_engines

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def federation3(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> Iterator[Federation]:
    yield start_federation(tmp_path, hub_home, make_hub)
    dispose_engines()


def register(fed: Federation, text: str = SMALL_TEMPLATE) -> dict[str, Any]:
    response = fed.hub.client.post(
        "/v1/assessments/templates", json={"yaml": text}, headers=fed.hub.headers("secretariat")
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def start(fed: Federation, template_id: str, period: str) -> dict[str, Any]:
    response = fed.hub.client.post(
        "/v1/assessments/rounds",
        params={"wait": 60},
        json=fed.round_body(template_id, period),
        headers=fed.hub.headers("secretariat"),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def answer(
    fed: Federation, round_id: str, country: str, item: str, value: Any, who: str = "secretariat"
) -> Any:
    return fed.hub.client.request(
        "PUT",
        f"/v1/assessments/rounds/{round_id}/answers/{country}/{item}",
        json={"value": value},
        headers=fed.hub.headers(who),
    )


def counts(fed: Federation) -> tuple[int, int]:
    engine = make_engine(fed.hub.settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            return (
                s.scalar(select(func.count()).select_from(RoundRow)) or 0,
                s.scalar(select(func.count()).select_from(QueryRow)) or 0,
            )
    finally:
        engine.dispose()


@SQLITE
def test_small_round_runs_and_reports_status_per_country(federation3: Federation) -> None:
    fed = federation3
    register(fed)
    body = start(fed, "lnob-mini", "2026")
    assert {c["country"] for c in body["countries"]} == {"524", "050", "404"}
    for country in body["countries"]:
        assert country["dp_total"] == 4
        assert country["dp_done"] == 4, body
        assert country["status"] == "collecting"
    round_id = body["round_id"]
    for country in ("524", "050", "404"):
        assert answer(fed, round_id, country, "MOU_SIGNED", "in_progress").status_code == 200
        assert answer(fed, round_id, country, "CGD_SETS_OFFICIAL", 3).status_code == 200
    status = fed.hub.client.get(
        f"/v1/assessments/rounds/{round_id}", headers=fed.hub.headers("secretariat")
    ).json()
    assert {c["status"] for c in status["countries"]} == {"complete"}
    # A mean indicator is handled like any measure: estimate, interval, status per cell.
    results = fed.hub.client.get(
        f"/v1/assessments/rounds/{round_id}/results", headers=fed.hub.headers("auditor")
    ).json()
    means = [v for v in results["values"] if v["indicator_id"] == "SATISFACTION"]
    assert {v["country"] for v in means} == {"524", "050", "404"}
    for v in means:
        assert v["measure"] == "mean"
        assert v["status"] == "ok"
        assert 1 <= v["ci95_low"] <= v["estimate"] <= v["ci95_high"] <= 5
    sheet = fed.hub.client.get(
        f"/v1/assessments/rounds/{round_id}/publication",
        params={"country": "524", "lang": "ne"},
        headers=fed.hub.headers("secretariat"),
    )
    assert sheet.status_code == 200
    assert "स्थानीय सेवाप्रतिको सन्तुष्टि" in sheet.text
    assert "x-sauti-missing-translations" not in sheet.headers


def _nonwhite_pixels(png: bytes) -> int:
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415 - Pillow comes with WeasyPrint

    image = Image.open(io.BytesIO(png)).convert("L")
    return sum(image.histogram()[:200])


def _pages_as_png(pdf: bytes, tmp_path: Any) -> list[bytes]:
    import subprocess  # noqa: PLC0415

    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "sheet.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        ["/usr/bin/pdftoppm", "-r", "40", "-png", str(source), str(tmp_path / "page")],
        check=True,
    )
    return [p.read_bytes() for p in sorted(tmp_path.glob("page-*.png"))]


def _text(pdf: bytes) -> str:
    import io  # noqa: PLC0415

    from pypdf import PdfReader  # noqa: PLC0415

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@SQLITE
def test_shipped_template_from_round_to_pdf_sdmx_and_comparison(
    federation3: Federation, tmp_path: Any
) -> None:
    """The shipped LNOB template over three countries, two rounds, every output format."""
    fed = federation3
    hub = fed.hub
    sec = hub.headers("secretariat")
    plan = hub.client.post(
        "/v1/assessments/rounds/plan", json=fed.round_body("lnob-core", "2025"), headers=sec
    )
    assert plan.status_code == 200, plan.text
    assert plan.json()["affordable"] is True
    assert plan.json()["queries"] == 13
    assert all(n["rho_needed"] == "0.26" for n in plan.json()["nodes"])

    first = start(fed, "lnob-core", "2025")
    second = start(fed, "lnob-core", "2026")
    round_id = second["round_id"]
    for rid in (first["round_id"], round_id):
        for country in ("524", "050", "404"):
            for item, value in (
                ("MOU_SIGNED", "yes"),
                ("CGD_SETS_OFFICIAL", 4),
                ("PARTICIPATION_SCORE", 2),
                ("PARTNERSHIP_SCORE", 3),
            ):
                assert answer(fed, rid, country, item, value).status_code == 200

    comparison = hub.client.get(f"/v1/assessments/rounds/{round_id}/comparison", headers=sec)
    assert comparison.status_code == 200, comparison.text
    body = comparison.json()
    assert body["previous_round_id"] == first["round_id"]
    totals = [c for c in body["changes"] if not c["breakdown"] and c["change"] is not None]
    assert totals
    for change in totals:
        assert change["change_ci95_low"] <= change["change"] <= change["change_ci95_high"]
        assert change["distinguishable"] == (
            change["change_ci95_low"] > 0 or change["change_ci95_high"] < 0
        )

    def publish(**params: Any) -> Any:
        return hub.client.get(
            f"/v1/assessments/rounds/{round_id}/publication",
            params={"audience": "partners", **params},
            headers=sec,
        )

    # Nepali and Bengali PDFs: every page renders to a non-blank PNG, and the text layer
    # holds strings that pypdf extracts reliably from these fonts (words whose vowel signs
    # need no reordering, and the countries' own digits).
    for country, lang, expected in (
        ("524", "ne", ("नेपाल", "जम्मा", "पुरुष", "२०२६")),
        ("050", "bn", ("বাংলাদেশ", "নারী", "উৎস", "২০২৬")),
    ):
        response = publish(country=country, lang=lang, format="pdf")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        assert "x-sauti-missing-translations" not in response.headers
        pages = _pages_as_png(response.content, tmp_path / lang)
        assert 1 <= len(pages) <= 2
        assert all(_nonwhite_pixels(png) > 500 for png in pages)
        text = _text(response.content)
        for snippet in expected:
            assert snippet in text, (lang, snippet)
        assert CANARY not in text

    nepali = publish(country="524", format="html", lang="ne")
    assert "अघिल्लो चरणदेखिको परिवर्तन" in nepali.text  # change since the previous round
    assert "२०२५" in nepali.text  # ... which was 2025, in Devanagari digits
    cross = publish(format="html", lang="sw")
    assert cross.status_code == 200
    assert "Ulinganisho kati ya nchi" in cross.text
    assert "Washirika pekee" in cross.text  # the document states its level
    for lang in ("en", "vi"):
        sheet = publish(country="404", format="html", lang=lang)
        assert sheet.status_code == 200
    assert "Chỉ dành cho đối tác" in sheet.text

    # Partners-only results cannot be published to the public, in any format.
    for fmt in ("pdf", "sdmx", "csv"):
        refused = hub.client.get(
            f"/v1/assessments/rounds/{round_id}/publication",
            params={"audience": "public", "format": fmt, "country": "524"},
            headers=sec,
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "dissemination_not_allowed"

    sdmx = publish(format="sdmx")
    assert sdmx.status_code == 200
    assert sdmx.headers["content-type"].startswith("application/vnd.sdmx.data+csv")
    from hub.exports.sdmx import check_sdmx_csv  # noqa: PLC0415

    assert check_sdmx_csv(sdmx.text) == []
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    rows = list(csv.DictReader(io.StringIO(sdmx.text)))
    assert {r["REF_AREA"] for r in rows} == {"524", "050", "404"}
    assert {r["CONF_STATUS"] for r in rows} == {"S"}
    assert {r["OBS_STATUS"] for r in rows} >= {"E", "A"}
    assert {r["SEX"] for r in rows} >= {"F", "M", "_T"}
    assert {r["POP_GROUP"] for r in rows} >= {"DALIT", "DISABILITY", "_T"}
    assert {r["INDICATOR"] for r in rows} == {
        "HEALTH_ACCESS",
        "VIOLENCE_12M",
        "VIOLENCE_REPORTED",
        "NO_SCHOOLING",
        "RESPONDENTS",
        "MOU_SIGNED",
        "CGD_SETS_OFFICIAL",
        "PARTICIPATION_SCORE",
        "PARTNERSHIP_SCORE",
    }
    for row in rows:
        if row["OBS_STATUS"] == "Q":
            assert row["OBS_VALUE"] == row["LOWER_BOUND"] == row["UPPER_BOUND"] == ""

    for fmt in ("csv", "xlsx"):
        data = publish(format=fmt, country="404")
        assert data.status_code == 200
        assert data.content
    # Every DP row states the guarantee of the node answers behind it.
    table = list(csv.DictReader(io.StringIO(publish(format="csv", country="404").text)))
    dp_rows = [r for r in table if r["kind"] == "dp" and r["status"] == "ok"]
    assert dp_rows
    assert all(r["rho"] and r["epsilon"] and r["delta"] == "1e-07" for r in dp_rows)
    everything = sdmx.text + publish(format="csv").text + cross.text
    assert CANARY not in everything
    assert CANARY not in _hub_db_text(fed)


def _hub_db_text(fed: Federation) -> str:
    engine = make_engine(fed.hub.settings.effective_database_url)
    try:
        with engine.connect() as conn:
            from sqlalchemy import MetaData  # noqa: PLC0415

            meta = MetaData()
            meta.reflect(conn)
            return "\n".join(
                repr(row) for table in meta.sorted_tables for row in conn.execute(table.select())
            )
    finally:
        engine.dispose()


@SQLITE
def test_template_naming_unknown_dataset_or_column_is_refused(federation3: Federation) -> None:
    hub = federation3.hub
    bad = SMALL_TEMPLATE.replace(
        "dataset: lnob_household, measure: count", "dataset: nosuch, measure: count"
    )
    bad = bad.replace("column: health_access", "column: no_such_column")
    response = hub.client.post(
        "/v1/assessments/templates", json={"yaml": bad}, headers=hub.headers("secretariat")
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_unknown_reference"
    assert "indicator RESPONDENTS: unknown dataset 'nosuch'" in error["message"]
    assert "indicator HEALTH_ACCESS: unknown column 'no_such_column'" in error["message"]
    broken = hub.client.post(
        "/v1/assessments/templates",
        json={"yaml": "id: x\nversion: [1"},
        headers=hub.headers("secretariat"),
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "template_invalid"
    listed = hub.client.get("/v1/assessments/templates", headers=hub.headers("analyst")).json()
    assert [t["template_id"] for t in listed] == ["lnob-core"]  # only the shipped one


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_round_over_budget_starts_nothing_and_charges_nothing(
    tmp_path: Any, hub_home: Any, make_hub: Any
) -> None:
    fed = start_federation(tmp_path, hub_home, make_hub, rho_per_query_max=0.5, rho_budget=1.2)
    try:
        register(fed)
        # Spend 0.5 of Nepal's budget first: the round needs 2.0 per node.
        asked = fed.hub.client.post(
            "/v1/queries",
            json={
                "agreement_id": AGREEMENT,
                "dataset": "lnob_household",
                "measure": "count",
                "rho": 0.5,
                "filters": [{"column": "country", "levels": ["524"]}],
            },
            headers=fed.hub.headers("analyst"),
        )
        assert asked.status_code == 201, asked.text
        before = counts(fed)
        plan = fed.hub.client.post(
            "/v1/assessments/rounds/plan",
            json=fed.round_body("lnob-mini", "2026"),
            headers=fed.hub.headers("secretariat"),
        ).json()
        assert plan["affordable"] is False
        remaining = {n["node_id"]: n["rho_remaining"] for n in plan["nodes"]}
        # Exact decimal strings: what is left, to the last digit.
        assert remaining["np-dalit-rights"] == "0.7"
        assert remaining["ke-disability-federation"] == "1.2"
        refused = fed.hub.client.post(
            "/v1/assessments/rounds",
            json=fed.round_body("lnob-mini", "2026"),
            headers=fed.hub.headers("secretariat"),
        )
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "round_over_budget"
        assert "node np-dalit-rights needs rho 2 but has 0.7 left" in error["message"]
        assert "short by 1.3)" in error["message"]
        assert "ke-disability-federation needs rho 2 but has 1.2 left" in error["message"]
        assert counts(fed) == before  # no round, no query: nothing sent, nothing charged
    finally:
        dispose_engines()


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_answers_are_checked_and_only_the_country_team_may_answer(
    federation3: Federation,
) -> None:
    from hub.auth import organisations, tokens  # noqa: PLC0415
    from hub.auth.schemas import OrganisationCreate  # noqa: PLC0415

    fed = federation3
    hub = fed.hub
    register(fed)
    round_id = start(fed, "lnob-mini", "2026")["round_id"]
    engine = make_engine(hub.settings.effective_database_url)
    with init_db(engine)() as s:
        organisations.create_organisation(
            session=s,
            body=OrganisationCreate(slug="nso-nepal", name="NSO Nepal", kind="nso", country="524"),
            actor="test",
        )
        hub.tokens["nepal"] = tokens.create_token(
            session=s, name="np-team", organisation="nso-nepal", role="analyst"
        )
    engine.dispose()

    for value, code in ((250, "answer_invalid"), (-1, "answer_invalid"), (2.5, "answer_invalid")):
        response = answer(fed, round_id, "524", "CGD_SETS_OFFICIAL", value, who="nepal")
        assert response.status_code == 422
        assert response.json()["error"]["code"] == code
        assert "between 0 and 200" in response.json()["error"]["message"] or value == 2.5
    wrong = answer(fed, round_id, "524", "MOU_SIGNED", "maybe", who="nepal")
    assert wrong.status_code == 422
    assert "maybe" not in wrong.json()["error"]["message"]
    assert answer(fed, round_id, "524", "MOU_SIGNED", "yes", who="nepal").status_code == 200
    other = answer(fed, round_id, "050", "MOU_SIGNED", "yes", who="nepal")
    assert other.status_code == 403
    assert answer(fed, round_id, "999", "MOU_SIGNED", "yes").json()["error"]["code"] == (
        "country_not_in_round"
    )
    assert answer(fed, round_id, "524", "NOPE", "yes").status_code == 422
    # The team cannot start rounds, read results or publish.
    for method, path in (
        ("POST", "/v1/assessments/rounds"),
        ("GET", f"/v1/assessments/rounds/{round_id}/results"),
        ("GET", f"/v1/assessments/rounds/{round_id}/publication"),
    ):
        response = hub.client.request(
            method, path, json=fed.round_body("lnob-mini", "2027"), headers=hub.headers("nepal")
        )
        assert response.status_code == 403, path

    # The HTML form: one bad answer saves none of them.
    form = hub.client.get(
        f"/assessments/rounds/{round_id}/answers/524", headers=hub.headers("nepal")
    )
    assert form.status_code == 200
    assert 'name="CGD_SETS_OFFICIAL"' in form.text
    posted = hub.client.post(
        f"/assessments/rounds/{round_id}/answers/524",
        data={"MOU_SIGNED": "no", "CGD_SETS_OFFICIAL": "999"},
        headers=hub.headers("nepal"),
    )
    assert posted.status_code == 422
    assert "Nothing was saved" in posted.text
    results = hub.client.get(
        f"/v1/assessments/rounds/{round_id}/results", headers=hub.headers("secretariat")
    ).json()
    assert [(a["indicator_id"], a["value"]) for a in results["answers"]] == [("MOU_SIGNED", "yes")]
    posted = hub.client.post(
        f"/assessments/rounds/{round_id}/answers/524",
        data={"MOU_SIGNED": "in_progress", "CGD_SETS_OFFICIAL": "7"},
        headers=hub.headers("nepal"),
    )
    assert posted.status_code == 200
    assert "Your answers were saved" in posted.text
    results = hub.client.get(
        f"/v1/assessments/rounds/{round_id}/results", headers=hub.headers("secretariat")
    ).json()
    scores = {a["indicator_id"]: (a["value"], a["score"]) for a in results["answers"]}
    assert scores == {"MOU_SIGNED": ("in_progress", 2.0), "CGD_SETS_OFFICIAL": (7, 3.0)}
    closed = hub.client.post(
        f"/v1/assessments/rounds/{round_id}/close", headers=hub.headers("secretariat")
    )
    assert closed.status_code == 204
    late = answer(fed, round_id, "524", "MOU_SIGNED", "no", who="nepal")
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "round_not_running"
    assert CANARY not in _hub_db_text(fed)


@SQLITE
def test_missing_translation_falls_back_to_english_and_is_listed(
    federation3: Federation,
) -> None:
    fed = federation3
    text = SMALL_TEMPLATE.replace(
        "title: Respondents heard in the survey", "title: Households visited by the team"
    )
    register(fed, text)
    round_id = start(fed, "lnob-mini", "2026")["round_id"]
    response = fed.hub.client.get(
        f"/v1/assessments/rounds/{round_id}/publication",
        params={"country": "404", "lang": "sw", "audience": "restricted"},
        headers=fed.hub.headers("secretariat"),
    )
    assert response.status_code == 200
    assert "Households visited by the team" in response.text  # English fallback
    assert "Walipata huduma za afya walipozihitaji" in response.text  # the rest translated
    from urllib.parse import unquote  # noqa: PLC0415

    assert unquote(response.headers["x-sauti-missing-translations"]) == (
        "Households visited by the team"
    )
    unknown = fed.hub.client.get(
        f"/v1/assessments/rounds/{round_id}/publication",
        params={"country": "404", "lang": "xx"},
        headers=fed.hub.headers("secretariat"),
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "language_unknown"
