"""`sauti assessment`: templates offline, and rounds against a hub served on a real socket."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from assessment_support import AGREEMENT, SMALL_TEMPLATE, start_federation
from hub_support import Hub, RoutingTransport
from typer.testing import CliRunner

from hub.app import create_app
from hub.assessments.templates import SHIPPED
from hub.exports.sdmx import check_sdmx_csv
from hub.home import HubIdentity
from node.db import dispose_engines
from sauti.cli import app
from sauti.serve import serve_in_thread


def test_validate_accepts_the_shipped_template_and_names_bad_references(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        app, ["assessment", "template", "validate", str(SHIPPED / "lnob-core-v1.yaml")]
    )
    assert ok.exit_code == 0, ok.stderr
    assert "lnob-core v1: 9 indicators (5 DP, rho 0.26 per node per round)" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\nversion: 1\ntitle: B\nindicators:\n"
        "  - {id: AA, kind: dp, theme: education, title: A,\n"
        "     query: {dataset: lnob_household, measure: share, column: caste,\n"
        "             value: x, rho: 0.1}}\n"
    )
    refused = runner.invoke(app, ["assessment", "template", "validate", str(bad)])
    assert refused.exit_code == 1
    assert "indicator AA: unknown column 'caste'" in refused.stderr
    assert "template_unknown_reference" in refused.stderr
    listed = runner.invoke(app, ["assessment", "template", "list"])
    assert listed.exit_code == 0
    assert listed.stdout.startswith("lnob-core\tv1\t")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_round_commands_against_a_served_hub(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> None:
    fed = start_federation(tmp_path, hub_home, make_hub)
    token = fed.hub.tokens["secretariat"]
    app_ = create_app(fed.hub.settings, transport=RoutingTransport(fed.routes))
    runner = CliRunner()
    countries = [arg for c in ("524", "050") for arg in ("--country", f"{c}={AGREEMENT}")]
    try:
        with serve_in_thread(app_) as server:
            common = ["--hub", server.url, "--token", token]
            registered = fed.hub.client.post(
                "/v1/assessments/templates",
                json={"yaml": SMALL_TEMPLATE},
                headers=fed.hub.headers("secretariat"),
            )
            assert registered.status_code == 201
            plan = runner.invoke(
                app,
                ["assessment", "round", "plan", *common, "lnob-mini", "2026", *countries],
            )
            assert plan.exit_code == 0, plan.stderr
            assert json.loads(plan.stdout)["affordable"] is True
            started = runner.invoke(
                app,
                ["assessment", "round", "start", *common, "lnob-mini", "2026", *countries],
            )
            assert started.exit_code == 0, started.stderr
            round_id = json.loads(started.stdout)["round_id"]
            answered = runner.invoke(
                app,
                [
                    "assessment",
                    "round",
                    "answer",
                    *common,
                    round_id,
                    "524",
                    "CGD_SETS_OFFICIAL",
                    "4",
                ],
            )
            assert answered.exit_code == 0, answered.stderr
            bad = runner.invoke(
                app,
                ["assessment", "round", "answer", *common, round_id, "524", "MOU_SIGNED", "maybe"],
            )
            assert bad.exit_code == 1
            assert "answer_invalid" in bad.stderr
            out = tmp_path / "np.sdmx.csv"
            published = runner.invoke(
                app,
                [
                    "assessment",
                    "publish",
                    *common,
                    round_id,
                    "--country",
                    "524",
                    "--format",
                    "sdmx",
                    "--audience",
                    "partners",
                    "--out",
                    str(out),
                ],
            )
            assert published.exit_code == 0, published.stderr
            # Progress on stderr while the hub renders; stdout stays the one JSON line.
            assert "the hub is making a data file (sdmx, en, partners)" in published.stderr
            assert "received " in published.stderr
            assert json.loads(published.stdout)["written"] == str(out)
            assert check_sdmx_csv(out.read_text()) == []
            public = runner.invoke(
                app,
                [
                    "assessment",
                    "publish",
                    *common,
                    round_id,
                    "--format",
                    "pdf",
                    "--audience",
                    "public",
                    "--out",
                    str(tmp_path / "public.pdf"),
                ],
            )
            assert public.exit_code == 1
            assert "dissemination_not_allowed" in public.stderr
            assert not (tmp_path / "public.pdf").exists()
    finally:
        dispose_engines()
