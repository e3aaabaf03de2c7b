"""Each `sauti` command imports only what it runs: a node command loads nothing of the hub
(nor WeasyPrint, Celery, Kombu or Authlib, which a node install does not carry), and
`sauti --help` loads no role at all. Checked in a fresh interpreter, from `sys.modules`."""

import json
import subprocess
import sys
from pathlib import Path

# Runs each argument list through the CLI in one fresh interpreter, then prints the names of
# the modules loaded. With no runs given, every `sauti node ...` help page is shown.
PROBE = """
import json, sys
import typer.main
from sauti.cli import app

command = typer.main.get_command(app)
runs = json.loads(sys.argv[1])

def leaves(group, path):
    for name in group.list_commands(None):
        sub = group.get_command(None, name)
        yield [*path, name]
        if hasattr(sub, "commands"):
            yield from leaves(sub, [*path, name])

if not runs:
    node = command.get_command(None, "node")
    runs = [[*path, "--help"] for path in leaves(node, ["node"])]
failed = []
for args in runs:
    try:
        command.main(args, prog_name="sauti", standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            failed.append(args)
    except Exception:
        failed.append(args)
print(json.dumps({"modules": sorted(sys.modules), "runs": len(runs), "failed": failed}))
"""

NODE_FREE_OF = ("hub", "weasyprint", "celery", "kombu", "authlib")


def probe(runs: list[list[str]], cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(runs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=300,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def roots(modules: object) -> set[str]:
    assert isinstance(modules, list)
    return {str(m).split(".")[0] for m in modules}


def test_every_node_help_page_loads_nothing_of_the_hub(tmp_path: Path) -> None:
    result = probe([], tmp_path)
    assert isinstance(result["runs"], int)
    assert result["runs"] > 40  # every node command and group
    assert result["failed"] == []
    assert roots(result["modules"]) & set(NODE_FREE_OF) == set()


def test_node_and_audit_commands_at_work_load_nothing_of_the_hub(tmp_path: Path) -> None:
    h = ["--home", str(tmp_path / "node")]
    runs = [
        ["node", "init", "--name", "CSO", "--country", "524", *h],
        ["node", "datasets", *h],
        ["node", "budget", *h],
        ["node", "agreements", "list", *h],
        ["node", "token", "create", "--name", "ci", *h],
        ["node", "steward", "list", *h],
        ["node", "migrate", "--status", *h],
        ["node", "modules", "list", *h],
        ["audit", "verify", *h],
        ["audit", "search", *h],
        ["audit", "export", *h, "--out", str(tmp_path / "log.jsonl")],
    ]
    result = probe(runs, tmp_path)
    assert result["failed"] == []
    assert roots(result["modules"]) & set(NODE_FREE_OF) == set()


def test_top_level_help_loads_no_role(tmp_path: Path) -> None:
    result = probe([["--help"]], tmp_path)
    modules = result["modules"]
    assert isinstance(modules, list)
    assert "hub.app" not in modules
    assert roots(modules) & {"hub", "node", "sqlalchemy", "pydantic", "weasyprint"} == set()
    assert not any(m.startswith("sauti.") and m.endswith("_cli") for m in modules)


def test_every_role_help_page_loads_no_application(tmp_path: Path) -> None:
    roles = ["hub", "audit", "query", "demo", "assessment"]
    result = probe(
        [[role, "--help"] for role in roles] + [["hub", "token", "create", "--help"]], tmp_path
    )
    assert result["failed"] == []
    heavy = {"sqlalchemy", "fastapi", "starlette", "uvicorn", "httpx", "polars", "numpy"}
    modules = result["modules"]
    assert isinstance(modules, list)
    assert roots(modules) & (heavy | set(NODE_FREE_OF) - {"hub"}) == set()
    assert "hub.app" not in modules
