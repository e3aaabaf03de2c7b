"""deploy/: compose structure, charts' values, and every `sauti` command they run exists.

No container engine or helm binary here: the compose file is checked structurally, the
chart templates for the values they read, and each command line through the real CLI of the
install that runs it (a node's through the node-only install's `sauti`, a hub's through the
hub-only one's).
"""

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hub.app import create_app as hub_app
from hub.home import init_home as hub_init
from hub.settings import HubSettings
from node.settings import NodeSettings
from sauti import cli
from tests.hub.hub_support import AppClient as HubClient
from tests.node.conftest import make_node

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SAUTI_IMAGES = {"hub-migrate", "hub", "worker", "node-push", "node-pull"}
# The `sauti` of each side's install (packaging/sauti-node, packaging/sauti-hub).
CLI = {"node": cli.node_app, "hub": cli.hub_app}


def side_of(name: str) -> str:
    return "node" if "node" in name else "hub"


def assert_sauti_command(args: list[str], side: str) -> None:
    """The command parses (every sub-command and option exists): `--help` is eager."""
    result = CliRunner().invoke(CLI[side], [*args, "--help"])
    assert result.exit_code == 0, f"sauti {' '.join(args)}: {result.output}"


def shell_commands(script: str) -> list[list[str]]:
    """The `sauti ...` commands of a small `sh -c` script (split on && || ;)."""
    found = []
    for part in re.split(r"&&|\|\||;", script):
        words = shlex.split(part)
        if words[:1] == ["exec"]:
            words = words[1:]
        if words[:1] == ["sauti"] or (words and words[0].endswith("/bin/sauti")):
            found.append(words[1:])
    return found


INTERPOLATION = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")


def interpolated(value: str) -> str:
    """What Compose makes of `${VAR:-default}` with VAR unset."""
    return INTERPOLATION.sub(lambda m: m.group(1), value)


def compose_commands(name: str) -> list[list[str]]:
    service = COMPOSE["services"][name]
    command = [interpolated(word) for word in service["command"]]
    if service.get("entrypoint") == ["sh", "-c"]:
        return shell_commands(" ".join(command))
    return [command]  # the image's ENTRYPOINT is `sauti`


def test_compose_runs_the_whole_federation() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", *SAUTI_IMAGES}
    for name in SAUTI_IMAGES:
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        assert build["dockerfile"] == f"deploy/{side_of(name)}.Dockerfile"  # its side's image
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for secret in service.get("secrets", []):
            assert secret in COMPOSE["secrets"]
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
            else:
                assert source in COMPOSE["volumes"], volume
    for secret in COMPOSE["secrets"].values():
        assert (DEPLOY / secret["file"]).is_file()
    assert services["hub"]["depends_on"]["hub-migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert [
        "hub", "worker", "--pool", "threads", "--concurrency", "8", "--processes", "2"
    ] in compose_commands("worker")  # fmt: skip
    assert any(c[:2] == ["node", "pull"] for c in compose_commands("node-pull"))
    assert any(c[:2] == ["node", "serve"] for c in compose_commands("node-push"))
    assert any(c[:2] == ["hub", "migrate"] for c in compose_commands("hub-migrate"))


@pytest.mark.parametrize("service", sorted(SAUTI_IMAGES))
def test_compose_commands_exist(service: str) -> None:
    commands = compose_commands(service)
    assert commands
    for args in commands:
        assert_sauti_command(args, side_of(service))


def test_example_settings_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for example in ("node-push.toml", "node-pull.toml"):
        monkeypatch.setenv("NODE_CONFIG_FILE", str(DEPLOY / "examples" / example))
        NodeSettings(home=tmp_path)
    monkeypatch.setenv("HUB_CONFIG_FILE", str(DEPLOY / "examples" / "hub.toml"))
    hub = HubSettings(home=tmp_path)
    keys = set(tomllib.loads((DEPLOY / "examples" / "hub.toml").read_text()))
    assert keys <= set(HubSettings.model_fields)  # the hub ignores unknown keys: check here
    assert hub.celery_enabled


def dockerfile(name: str) -> dict[str, Any]:
    text = (DEPLOY / name).read_text().replace("\\\n", " ")
    found: dict[str, Any] = {"copy": [], "from": []}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in ("ENTRYPOINT", "CMD"):
            found[word] = json.loads(rest)
        elif word in ("USER", "HEALTHCHECK", "EXPOSE"):
            found[word] = rest.strip()
        elif word == "COPY" and not rest.startswith("--from"):
            found["copy"].extend(rest.split()[:-1])
        elif word == "FROM":
            found["from"].append(rest.split()[0])
        elif word == "RUN" and "pip install" in rest:
            found.setdefault("installed", []).extend(rest.split()[2:])
    return found


@pytest.mark.parametrize(("name", "role"), [("hub.Dockerfile", "hub"), ("node.Dockerfile", "node")])
def test_images_are_slim_non_root_and_run_real_commands(name: str, role: str) -> None:
    image = dockerfile(name)
    assert all("slim" in base for base in image["from"])
    assert image["USER"].split(":")[0] not in ("root", "0")
    assert image["ENTRYPOINT"] == ["sauti"]
    assert image["CMD"][:2] == [role, "serve"]
    assert_sauti_command(image["CMD"], role)
    for path in image["copy"]:
        assert (ROOT / path).exists(), path
    assert "/v1/health" in image["HEALTHCHECK"]
    assert image["EXPOSE"] in " ".join(image["CMD"])
    # Its side's own install: its lock, its distribution, nothing of the other side.
    other = "hub" if role == "node" else "node"
    assert f"requirements-{role}.lock" in image["copy"]
    assert f"packaging/sauti-{role}" in image["copy"]
    assert other not in image["copy"]
    assert f"requirements-{role}.lock" in image["installed"]
    assert f"./packaging/sauti-{role}" in image["installed"]
    lock = (ROOT / f"requirements-{role}.lock").read_text()
    pinned = {line.split("==")[0] for line in lock.splitlines() if "==" in line}
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    dev_names = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0] for d in dev}
    assert not dev_names & pinned, "the image must hold no dev tool"


def test_health_checks_hit_real_routes(tmp_path: Path) -> None:
    hub_init(tmp_path / "hub", hub_id="h")
    client = HubClient(hub_app(HubSettings(home=tmp_path / "hub")))
    try:
        response = client.get("/v1/health")
    finally:
        client.close()
    assert response.status_code == 200
    node = make_node(tmp_path / "node", f"sqlite:///{tmp_path}/n.sqlite")
    response = node.client.get("/v1/health")
    assert response.status_code == 200
    assert response.json()["node_id"] == node.identity.node_id


VALUE_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
COMMAND = re.compile(r"command: (\[\"sauti\".*?\])")


def chart_files(chart: str) -> tuple[dict[str, Any], dict[str, str]]:
    folder = DEPLOY / "helm" / chart
    values = yaml.safe_load((folder / "values.yaml").read_text())
    templates = {p.name: p.read_text() for p in sorted((folder / "templates").iterdir())}
    return values, templates


@pytest.mark.parametrize("chart", ["sauti", "sauti-node"])
def test_helm_chart_templates_read_only_defined_values(chart: str) -> None:
    meta = yaml.safe_load((DEPLOY / "helm" / chart / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == chart
    values, templates = chart_files(chart)
    defined = set(re.findall(r'define "([^"]+)"', templates["_helpers.tpl"]))
    for name, text in templates.items():
        for ref in VALUE_REF.findall(text):
            node: Any = values
            for key in ref.strip(".").split("."):
                assert isinstance(node, dict), f"{name}: .Values{ref}"
                assert key in node, f"{name}: .Values{ref} is not in values.yaml"
                node = node[key]
        for used in re.findall(r'include "([^"]+)"', text):
            assert used in defined or used.startswith("("), f"{name}: {used}"
        opened = len(re.findall(r"\{\{-?\s*(if|range|with|define)\b", text))
        closed = len(re.findall(r"\{\{-?\s*end\s*-?\}\}", text))
        assert opened == closed, f"{name}: {opened} blocks opened, {closed} closed"
        assert text.count("{{") == text.count("}}"), name


def test_hub_chart_has_web_worker_migrations_ingress_and_secrets() -> None:
    _, templates = chart_files("sauti")
    kinds = {n: re.findall(r"^kind: (\w+)", t, re.M) for n, t in templates.items()}
    assert kinds["deployment-web.yaml"] == ["Deployment"]
    assert kinds["deployment-worker.yaml"] == ["Deployment"]
    assert kinds["job-migrate.yaml"] == ["Job"]
    assert kinds["ingress.yaml"] == ["Ingress"]
    assert "Secret" in kinds["secret.yaml"]
    assert "pre-upgrade" in templates["job-migrate.yaml"]


@pytest.mark.parametrize("chart", ["sauti", "sauti-node"])
def test_helm_chart_commands_exist(chart: str) -> None:
    _, templates = chart_files(chart)
    commands = [json.loads(c) for t in templates.values() for c in COMMAND.findall(t)]
    assert commands
    for command in commands:
        assert_sauti_command(command[1:], side_of(chart))
    shells = [
        line.strip().removeprefix("- ")
        for t in templates.values()
        for line in t.splitlines()
        if "|| sauti" in line
    ]
    for script in shells:
        for args in shell_commands(script):
            assert_sauti_command(["x" if a.startswith("$") else a for a in args], side_of(chart))


def test_systemd_units_run_real_commands() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"sauti-node.service", "sauti-node-pull.service"}
    for unit in units:
        for line in unit.read_text().splitlines():
            if not line.startswith(("ExecStart=", "ExecStartPre=")):
                continue
            command = line.split("=", 1)[1]
            if command.startswith("/bin/sh -c"):
                command = shlex.split(command)[2].split("$(")[0] + "x"
            for args in shell_commands(command):
                assert_sauti_command(args, side_of(unit.name))


def test_compose_and_helm_expose_api_and_worker_counts() -> None:
    """Scale-out is a setting: API processes, worker processes, concurrency and replicas."""
    services = COMPOSE["services"]
    hub_command = services["hub"]["command"]
    processes = hub_command[hub_command.index("--processes") + 1]
    assert processes == "${SAUTI_API_PROCESSES:-2}"
    worker_command = services["worker"]["command"]
    for option, variable in (
        ("--processes", "SAUTI_WORKER_PROCESSES"),
        ("--concurrency", "SAUTI_WORKER_CONCURRENCY"),
    ):
        assert worker_command[worker_command.index(option) + 1].startswith(f"${{{variable}:-")
    assert interpolated(str(services["worker"]["deploy"]["replicas"])) == "1"

    values, templates = chart_files("sauti")
    assert values["web"]["processes"] >= 2
    assert values["worker"]["processes"] >= 2
    args = {
        name: re.search(r"^\s*args: (\[.*\])$", templates[name], re.M)
        for name in ("deployment-web.yaml", "deployment-worker.yaml")
    }
    web_args, worker_args = (m.group(1) if m else "" for m in args.values())
    assert '"--processes", {{ .Values.web.processes | quote }}' in web_args
    assert '"--processes", {{ .Values.worker.processes | quote }}' in worker_args
    assert "replicas: {{ .Values.worker.replicas }}" in templates["deployment-worker.yaml"]
    # The rendered command lines parse.
    rendered = {
        key: str(value)
        for section in ("web", "worker")
        for key, value in ((f".Values.{section}.{k}", v) for k, v in values[section].items())
    }

    def render(text: str) -> list[str]:
        text = re.sub(
            r"\{\{ (\.Values\.[a-z.]+) \| quote \}\}",
            lambda m: json.dumps(rendered[m.group(1)]),
            text,
        )
        parsed: list[str] = json.loads(text)
        return parsed

    web = json.loads(COMMAND.findall(templates["deployment-web.yaml"])[0])
    assert_sauti_command([*web[1:], *render(web_args)], "hub")
    assert_sauti_command(["hub", "worker", *render(worker_args)], "hub")
