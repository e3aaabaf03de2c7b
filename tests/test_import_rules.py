"""The import rules of pyproject.toml ([tool.importlinter]) hold, and they do bite.

CI runs `make test` only, so the rules are checked here as well as by `lint-imports` in
`make check`: sauti > hub | node > runtime > contracts, hub and node independent, contracts
free of database/web/HTTP libraries, the DP engine free of web and database code, and only
node.privacy importing opendp.
"""

import sys
import textwrap
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "BROKEN" not in report


def test_a_broken_contract_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A hub that imports the node, checked with the project's own kind of contract.
    for package, body in {"hubx": "import nodex\n", "nodex": ""}.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(body)
    config = tmp_path / "setup.toml"
    config.write_text(
        textwrap.dedent(
            """
            [tool.importlinter]
            root_packages = ["hubx", "nodex"]

            [[tool.importlinter.contracts]]
            name = "independent"
            type = "independence"
            modules = ["hubx", "nodex"]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hubx", "nodex"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert lint_imports(config_filename=str(config), no_cache=True) == 1
    assert "BROKEN" in capsys.readouterr().out
