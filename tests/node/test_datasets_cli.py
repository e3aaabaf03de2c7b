"""`sauti node import|datasets|dataset-delete|contract ...` on a real home."""

import json

from typer.testing import CliRunner

from node.db import dispose_engines
from sauti.cli import app
from tests.node.datasets_support import (
    IDENT_CANARY,
    PHONE_CANARY,
    kobo_csv,
    write_delimited,
    xlsform,
)

runner = CliRunner()


def _run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["node", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_draft_publish_import_list_delete(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NODE_DATABASE_URL", raising=False)
    home = str(tmp_path / "home")
    _run("init", "--home", home, "--name", "FEDO", "--country", "524")
    data = str(kobo_csv(tmp_path / "kobo.csv"))
    form = str(xlsform(tmp_path / "form.xlsx"))
    draft = tmp_path / "draft.json"
    out = _run(
        "contract",
        "draft",
        data,
        "--dataset",
        "dalit",
        "--home",
        home,
        "--format",
        "kobo",
        "--codebook",
        form,
        "--out",
        str(draft),
    )
    assert "identifier" in out
    assert IDENT_CANARY not in out
    schema = json.loads(draft.read_text())
    assert "full_name" in [i["name"] for i in schema["x-privacy"]["identifiers"]]
    assert "valid" in _run("contract", "validate", "--contract", str(draft), "--home", home)
    _run("contract", "publish", str(draft), "--home", home)
    checked = _run(
        "contract",
        "validate",
        data,
        "--dataset",
        "dalit",
        "--format",
        "kobo",
        "--home",
        home,
        "--codebook",
        form,
    )
    assert "satisfies" in checked
    imported = _run(
        "import",
        data,
        "--dataset",
        "dalit",
        "--format",
        "kobo",
        "--codebook",
        form,
        "--home",
        home,
    )
    assert "imported dalit version 1" in imported
    _run("import", data, "--dataset", "dalit", "--format", "kobo", "--home", home)
    listed = json.loads(_run("datasets", "--home", home, "--json"))
    assert [(v["version"], v["current"]) for v in listed] == [(1, False), (2, True)]
    shown = json.loads(_run("contract", "show", "dalit", "--home", home, "--table-schema"))
    assert shown["x-sauti"]["name"] == "dalit"
    _run("dataset-delete", "dalit", "2", "--home", home, "--yes")
    assert len(json.loads(_run("datasets", "--home", home, "--json"))) == 1
    dispose_engines()


def test_bad_file_exits_1_with_a_report_and_no_values(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NODE_DATABASE_URL", raising=False)
    home = str(tmp_path / "home")
    _run("init", "--home", home, "--name", "FEDO", "--country", "524")
    rows = [[str(i), IDENT_CANARY, PHONE_CANARY, "f" if i else "x", str(i)] for i in range(5)]
    good = write_delimited(tmp_path / "g.csv", ["id", "name", "phone", "sex", "score"], rows[1:])
    draft = tmp_path / "c.json"
    _run(
        "contract",
        "draft",
        str(good),
        "--dataset",
        "towns",
        "--home",
        home,
        "--out",
        str(draft),
        "--categorical",
        "sex=f,m",
    )
    schema = json.loads(draft.read_text())
    assert {"name", "phone"} <= {i["name"] for i in schema["x-privacy"]["identifiers"]}
    bad = write_delimited(tmp_path / "b.csv", ["id", "name", "phone", "sex", "score"], rows)
    result = runner.invoke(
        app,
        [
            "node",
            "import",
            str(bad),
            "--dataset",
            "towns",
            "--contract",
            str(draft),
            "--home",
            home,
        ],
    )
    assert result.exit_code == 1
    assert "unknown_level" in result.output
    assert "dataset_invalid" in result.output
    assert IDENT_CANARY not in result.output
    assert PHONE_CANARY not in result.output
    as_json = runner.invoke(
        app,
        [
            "node",
            "contract",
            "validate",
            str(bad),
            "--contract",
            str(draft),
            "--home",
            home,
            "--json",
        ],
    )
    assert as_json.exit_code == 1
    assert json.loads(as_json.output.split("\nerror:")[0])["ok"] is False
    assert json.loads(_run("datasets", "--home", home, "--json")) == []
    dispose_engines()
