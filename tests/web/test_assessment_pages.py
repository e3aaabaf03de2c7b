"""The assessment pages over `sauti demo`'s own federation: who may do what, bad input, and
the README's round commands run as written against the same demo hub."""

import os
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from assessment_site import COUNTRIES, DemoSite, demo_site, login

from hub.assessments.templates import SHIPPED
from sauti.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    with demo_site(tmp_path_factory.mktemp("assess")) as running:
        yield running


@contextmanager
def _session(site: DemoSite, who: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client logged in as `who`, and its CSRF token."""
    with httpx.Client(base_url=site.url, timeout=120) as client:
        yield client, login(client, site, who)


def _round_form(site: DemoSite, csrf: str, **extra: str) -> dict[str, str]:
    form = {"csrf_token": csrf, "template": "lnob-core:1", "period": "2026"}
    form.update({f"country_{c}": site.fed.agreement_id for c in COUNTRIES})
    form.update(extra)
    return form


def _rounds(site: DemoSite) -> list[dict[str, str]]:
    headers = {"Authorization": f"Bearer {site.fed.secretariat_token}"}
    response = httpx.get(f"{site.url}/v1/assessments/rounds", headers=headers)
    assert response.status_code == 200
    rounds: list[dict[str, str]] = response.json()
    return rounds


def _start(site: DemoSite, period: str) -> str:
    with _session(site, "secretariat") as (client, csrf):
        started = client.post("/assessments/rounds", data=_round_form(site, csrf, period=period))
    assert started.status_code == 303, started.text
    return started.headers["location"].rsplit("/", 1)[1]


def test_only_the_secretariat_plans_starts_and_publishes(site: DemoSite) -> None:
    round_id = _start(site, "2025")
    before = len(_rounds(site))
    for who in ("analyst", "auditor", "steward"):
        with _session(site, who) as (client, csrf):
            for method, path, data in (
                ("GET", "/assessments", None),
                ("GET", "/assessments/rounds/new", None),
                ("POST", "/assessments/rounds/plan", _round_form(site, csrf)),
                ("POST", "/assessments/rounds", _round_form(site, csrf)),
                ("GET", f"/assessments/rounds/{round_id}", None),
                ("GET", f"/assessments/rounds/{round_id}/publish", None),
                (
                    "POST",
                    f"/assessments/rounds/{round_id}/publications",
                    {"csrf_token": csrf, "format": "csv", "lang": "en", "audience": "partners"},
                ),
            ):
                response = client.request(method, path, data=data)
                assert response.status_code == 403, (who, path)
                assert "You cannot open this page" in response.text
            # None of them is Bangladesh's country team. The steward's organisation is in
            # Nepal: it may answer for Nepal, on a form without the round's query status.
            assert client.get(f"/assessments/rounds/{round_id}/answers/050").status_code == 403
            nepal = client.get(f"/assessments/rounds/{round_id}/answers/524")
            assert nepal.status_code == (200 if who == "steward" else 403)
            assert "Queries to the nodes" not in nepal.text
    assert len(_rounds(site)) == before
    # Without a session: to the login page; without the form's token: refused.
    anonymous = httpx.get(f"{site.url}/assessments", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login")
    with _session(site, "secretariat") as (client, _csrf):
        forged = client.post("/assessments/rounds", data=_round_form(site, "not-the-token"))
        assert forged.status_code == 403
    assert len(_rounds(site)) == before


def _templates(site: DemoSite) -> int:
    headers = {"Authorization": f"Bearer {site.fed.secretariat_token}"}
    return len(httpx.get(f"{site.url}/v1/assessments/templates", headers=headers).json())


def test_a_bad_template_upload_names_rule_and_line_and_stores_nothing(site: DemoSite) -> None:
    shipped = (SHIPPED / "lnob-core-v1.yaml").read_text(encoding="utf-8")
    renamed = shipped.replace("id: lnob-core", "id: lnob-test", 1)
    too_costly = renamed.replace("rho: 0.02}", "rho: 20}", 1)
    line = next(i for i, text in enumerate(too_costly.splitlines(), 1) if "rho: 20}" in text)
    count = _templates(site)
    with _session(site, "secretariat") as (client, csrf):

        def upload(content: bytes, action: str = "register") -> httpx.Response:
            return client.post(
                "/assessments/templates",
                data={"csrf_token": csrf, "action": action},
                files={"template": ("t.yaml", content, "application/x-yaml")},
            )

        refused = upload(too_costly.encode())
        assert refused.status_code == 422
        assert "does not follow the template rules" in refused.text
        assert "indicator HEALTH_ACCESS: query.rho (less_than_equal: " in refused.text
        assert f"at line {line}" in refused.text
        assert 'aria-invalid="true"' in refused.text
        assert 'id="error-summary" tabindex="-1" autofocus' in refused.text

        broken = upload(b"id: x\nindicators: [\n")
        assert broken.status_code == 422
        assert "not valid YAML at line" in broken.text

        not_utf8 = upload("title: Nepal \u2014 Sauti".encode("utf-16"))
        assert not_utf8.status_code == 422
        assert "not UTF-8 text" in not_utf8.text

        unknown = upload(renamed.replace("column: health_access", "column: nope", 1).encode())
        assert unknown.status_code == 422
        assert "unknown column" in unknown.text

        assert _templates(site) == count
        checked = upload(renamed.encode(), action="check")
        assert checked.status_code == 200
        assert "No problem found" in checked.text
        assert _templates(site) == count
        registered = upload(renamed.encode())
        assert "Registered." in registered.text
        assert _templates(site) == count + 1
        again = upload(renamed.encode())
        assert again.status_code == 409
        assert "already registered" in again.text
    assert _templates(site) == count + 1


def test_plan_form_problems_sit_by_their_fields_and_keep_what_was_typed(site: DemoSite) -> None:
    before = len(_rounds(site))
    with _session(site, "secretariat") as (client, csrf):
        page = client.post(
            "/assessments/rounds/plan",
            data={"csrf_token": csrf, "template": "lnob-core:1", "period": "twenty26"},
        )
        assert page.status_code == 422
        html = page.text
        assert 'id="error-summary" tabindex="-1" autofocus' in html
        assert re.search(r'id="period"[^>]*value="twenty26"[^>]*aria-invalid="true"', html)
        assert 'id="period-error"' in html
        assert 'aria-describedby="period-hint period-error"' in html
        assert 'id="countries-error"' in html
        assert '<option value="lnob-core:1" selected>' in html
        # Starting from a tampered form is refused the same way: nothing starts.
        bad = client.post("/assessments/rounds", data=_round_form(site, csrf, country_524="x"))
        assert bad.status_code == 422
        assert 'id="country_524-error"' in bad.text
        assert _round_form(site, csrf)["country_050"] in bad.text
        # A plan shows each node's budget before and after, and starts nothing.
        plan = client.post("/assessments/rounds/plan", data=_round_form(site, csrf))
        assert plan.status_code == 200
        assert "Left before" in plan.text
        assert "Left after" in plan.text
        assert "0.26" in plan.text
    assert len(_rounds(site)) == before


def test_answer_form_keeps_typed_answers_and_saves_none_on_a_problem(site: DemoSite) -> None:
    round_id = _start(site, "2026-Q1")
    path = f"/assessments/rounds/{round_id}/answers/524"
    with _session(site, "secretariat") as (client, csrf):
        page = client.get(path)
        assert page.status_code == 200
        assert "Answers for Nepal" in page.text
        assert "/answers/050" in page.text  # navigation to the round's other country
        assert "status running" not in page.text
        bad = client.post(
            path, data={"csrf_token": csrf, "MOU_SIGNED": "in_progress", "CGD_SETS_OFFICIAL": "2.5"}
        )
        assert bad.status_code == 422
        assert "Nothing was saved" in bad.text
        assert 'id="CGD_SETS_OFFICIAL-error"' in bad.text
        assert re.search(
            r'id="CGD_SETS_OFFICIAL"[^>]*value="2.5"[^>]*aria-invalid="true"', bad.text
        )
        assert re.search(r'value="in_progress" checked', bad.text)
        headers = {"Authorization": f"Bearer {site.fed.secretariat_token}"}
        results = httpx.get(
            f"{site.url}/v1/assessments/rounds/{round_id}/results", headers=headers, timeout=60
        ).json()
        assert results["answers"] == []
        good = client.post(
            path, data={"csrf_token": csrf, "MOU_SIGNED": "in_progress", "CGD_SETS_OFFICIAL": "3"}
        )
        assert good.status_code == 200
        assert "Your answers were saved" in good.text
        # In Nepali: the country by its name, the page's own words translated.
        client.cookies.set("sauti_lang", "ne")
        nepali = client.get(path).text
        assert "नेपाल" in nepali
        assert "Save answers" not in nepali
        # The shipped template's titles, options and rubric levels: all in Nepali.
        main = nepali.split("<main", 1)[1].split("</main>", 1)[0]
        assert 'lang="en"' not in main
        assert "संयुक्त कार्ययोजना छ।" in main


def _readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("### Cross-country assessments and fact sheets", 1)[1].split("```sh", 1)[1]
    lines = [line.split("#", 1)[0].strip() for line in block.split("```", 1)[0].splitlines()]
    return [line for line in lines if line.startswith("sauti ")]


def test_the_readmes_round_commands_run_on_the_demo(
    site: DemoSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sauti demo --serve` prints the hub and the secretariat's token: the rest runs as written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-template.yaml").write_text(
        (SHIPPED / "lnob-core-v1.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    env = {"SAUTI_HUB": site.url, "SAUTI_TOKEN": site.fed.secretariat_token}
    runner = CliRunner()
    commands = _readme_commands()
    assert any(
        " round plan lnob-core 2026 --country 524=lnob-basic-services-2026" in c for c in commands
    )
    round_id = ""
    for command in commands:
        args = shlex.split(command.replace("ROUND", round_id or "ROUND"))[1:]
        result = runner.invoke(app, args, env={**os.environ, **env})
        assert result.exit_code == 0, (command, result.output)
        if args[:3] == ["assessment", "round", "start"]:
            round_id = re.search(r'"round_id": "([^"]+)"', result.output).group(1)  # type: ignore[union-attr]
    assert round_id
    assert (tmp_path / "np.pdf").read_bytes().startswith(b"%PDF")
