"""Canary through the steward's whole import: a respondent's comment, name and income, planted
in a real-shaped Kobo export, never reach /v1/info, any response, the log or a download.

The path a CSO steward follows: draft (API and command line, with and without the XLSForm),
publish, validate, import, list, show, export the audit log (CSV), and the public info.
"""

import json
import logging
from pathlib import Path

from typer.testing import CliRunner

from node.auth import service as auth
from sauti.cli import app as cli
from tests.node import survey_exports as se
from tests.node.conftest import Node

PLANTED = (se.CANARY_COMMENT, se.CANARY_NAME, str(se.CANARY_INCOME))


def test_planted_respondent_never_leaves_the_steward_flow(
    node: Node, tmp_path: Path, caplog, capsys
) -> None:
    caplog.set_level(logging.DEBUG)
    form = se.scorecard_form(tmp_path / "scorecard.xlsx")
    survey = se.generate(se.read_form(form), submissions=80, seed=5)
    export = tmp_path / "scorecard.csv"
    se.kobo_csv(survey, export)
    assert se.CANARY_COMMENT in export.read_text(encoding="utf-8")
    token = auth.create_token(database_url=node.settings.db_url, name="Sita")
    headers = {"Authorization": f"Bearer {token}"}
    url = "/v1/steward/datasets/scorecard"
    data = export.read_bytes()
    bodies = []

    def call(method: str, path: str, **kwargs) -> dict | list | str:
        response = node.client.request(method, path, headers=headers, **kwargs)
        bodies.append(response.text)
        assert response.status_code < 300, response.text
        return response.json() if response.headers.get("content-type") == "application/json" else ""

    drafted = call("POST", f"{url}/draft?filename=scorecard.csv", content=data)
    assert isinstance(drafted, dict)
    # Free text and names are never public; a few columns need bounds set by the steward.
    contract = drafted["contract"]
    assert {c["name"]: c["role"] for c in contract["columns"]}["comment"] == "free_text"
    call("POST", f"{url}/contracts", json=contract)
    call("POST", f"{url}/validate?filename=scorecard.csv", content=data)
    call("POST", f"{url}/imports?filename=scorecard.csv", content=data)
    call("GET", "/v1/steward/datasets")
    call("GET", f"{url}/contract?table_schema=true")
    call("GET", "/v1/steward/audit/export?format=csv")
    call("GET", "/v1/steward/audit/export")
    info = node.client.get("/v1/info")
    assert info.status_code == 200
    bodies.append(info.text)
    # The command line, with the form, as a steward would run it.
    home = str(node.home)
    out = tmp_path / "c.json"
    runner = CliRunner()
    for args in (
        [
            "contract",
            "draft",
            str(export),
            "--dataset",
            "sc2",
            "--codebook",
            str(form),
            "--json",
            "--out",
            str(out),
        ],
        ["contract", "draft", str(export), "--dataset", "sc2"],
        ["contract", "publish", str(out)],
        ["import", str(export), "--dataset", "sc2", "--codebook", str(form), "--json"],
        ["datasets", "--json"],
    ):
        result = runner.invoke(cli, ["node", *args, "--home", home])
        assert result.exit_code == 0, result.output
        bodies.append(result.output)
    published = json.loads(out.read_text(encoding="utf-8"))  # --json --out writes the file
    bodies.append(json.dumps(published, ensure_ascii=False))
    bodies.append(node.client.get("/v1/info").text)
    captured = capsys.readouterr()
    texts = [*bodies, caplog.text, captured.out, captured.err]
    for planted in PLANTED:
        assert not any(planted in text for text in texts), planted
    # Nor the other people in the survey: a caregiver's name is a candidate, never a level.
    names = {
        v
        for s in survey.submissions
        for k, v in s.values.items()
        if k in ("resp_name", "caregiver") and v
    }
    public = bodies[-1]
    assert not any(name in public for name in names)
