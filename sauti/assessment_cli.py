"""`sauti assessment`: templates, rounds, answers, comparisons and publications on a hub."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from sauti.cli_common import echo_json, fail, read_model

if TYPE_CHECKING:
    import httpx

app = typer.Typer(no_args_is_help=True)
template_app = typer.Typer(no_args_is_help=True)
round_app = typer.Typer(no_args_is_help=True)
app.add_typer(template_app, name="template", help="Check and list assessment templates.")
app.add_typer(round_app, name="round", help="Plan, start and follow rounds; answer items.")

Hub = Annotated[str, typer.Option("--hub", envvar="SAUTI_HUB", help="The hub's base URL.")]
Token = Annotated[str, typer.Option("--token", envvar="SAUTI_TOKEN", help="API token.")]
Countries = Annotated[
    list[str],
    typer.Option("--country", help="M49=AGREEMENT, repeatable (e.g. 524=lnob-2026)."),
]
Format = Literal["html", "pdf", "csv", "xlsx", "sdmx"]
Audience = Literal["public", "partners", "restricted"]


def _call(
    method: str,
    hub: str,
    token: str,
    path: str,
    *,
    body: object = None,
    params: dict[str, Any] | None = None,
    timeout: float = 120.0,
) -> httpx.Response:
    import httpx
    from pydantic import ValidationError

    from contracts.v1 import ErrorResponse

    try:
        response = httpx.request(
            method,
            hub.rstrip("/") + path,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        fail(f"hub_unreachable: cannot reach the hub ({type(exc).__name__})")
    if response.status_code >= 400:
        try:
            error = ErrorResponse.model_validate_json(response.content).error
        except ValidationError:
            fail(f"http_{response.status_code}: the hub refused the request")
        fail(f"{error.code}: {error.message}")
    return response


class _Ticker:
    """Says on stderr, every few seconds, that the hub is still at work (a PDF takes 20-40 s),
    so a wait reads as progress and not as a hang."""

    EVERY = 5.0

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _run(self) -> None:
        while not self.done.wait(self.EVERY):
            typer.echo(f"  still rendering... {self.elapsed():.0f} s", err=True)

    def __enter__(self) -> _Ticker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def _countries(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        country, sep, agreement = pair.partition("=")
        if not sep or not country.strip() or not agreement.strip():
            raise typer.BadParameter("use M49=AGREEMENT", param_hint="--country")
        out[country.strip()] = agreement.strip()
    return out


@template_app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="A template YAML file.")],
    contract: Annotated[
        list[Path] | None,
        typer.Option("--contract", help="Dataset contract JSON (repeatable); default: demo."),
    ] = None,
) -> None:
    """Check a template offline against dataset contracts (the demo's by default)."""
    from contracts import budget as exact
    from contracts.v1 import DatasetContract
    from hub.assessments.exceptions import TemplateInvalid
    from hub.assessments.templates import catalogue_from_contracts, load_template, validate_template
    from sauti.demo.codebook import COUNTRIES, make_contract

    contracts = (
        [read_model(p, DatasetContract) for p in contract]
        if contract
        else [make_contract(c) for c in COUNTRIES]
    )
    try:
        template = validate_template(load_template(path), catalogue_from_contracts(contracts))
    except TemplateInvalid as exc:
        for problem in exc.problems:
            typer.echo(f"problem: {problem}", err=True)
        fail(f"{exc.code}: {len(exc.problems)} problem(s) in {path.name}")
    rho = exact.add(*(i.rho_per_node for i in template.dp_indicators))
    typer.echo(
        f"ok: {template.id} v{template.version}: {len(template.indicators)} indicators "
        f"({len(template.dp_indicators)} DP, rho {exact.text(rho)} per node per round)"
    )


@template_app.command("list")
def list_templates(
    hub: Annotated[str | None, typer.Option("--hub", envvar="SAUTI_HUB")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="SAUTI_TOKEN")] = None,
) -> None:
    """The hub's templates (with --hub), else the ones shipped with Sauti."""
    from hub.assessments.templates import shipped_templates

    if hub and token:
        echo_json(_call("GET", hub, token, "/v1/assessments/templates").json())
        return
    for template in shipped_templates():
        typer.echo(f"{template.id}\tv{template.version}\t{template.title}")


@round_app.command("plan")
def plan(hub: Hub, token: Token, template: str, period: str, country: Countries) -> None:
    """Cost every DP indicator per node against its remaining budget; starts nothing."""
    body = {"template_id": template, "period": period, "countries": _countries(country)}
    echo_json(_call("POST", hub, token, "/v1/assessments/rounds/plan", body=body).json())


@round_app.command("start")
def start(  # noqa: PLR0917 - typer maps each parameter
    hub: Hub,
    token: Token,
    template: str,
    period: str,
    country: Countries,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for queries.")] = 60,
) -> None:
    """Start a round: refused (nothing asked, nothing charged) if any node cannot afford it."""
    body = {"template_id": template, "period": period, "countries": _countries(country)}
    response = _call(
        "POST",
        hub,
        token,
        "/v1/assessments/rounds",
        body=body,
        params={"wait": wait},
        timeout=wait + 60,
    )
    echo_json(response.json())


@round_app.command("status")
def status(hub: Hub, token: Token, round_id: str) -> None:
    echo_json(_call("GET", hub, token, f"/v1/assessments/rounds/{round_id}").json())


@round_app.command("answer")
def answer(  # noqa: PLR0917 - typer maps each parameter
    hub: Hub, token: Token, round_id: str, country: str, indicator: str, value: str
) -> None:
    """Answer a self-reported indicator for a country (numbers are sent as numbers)."""
    parsed: str | float = value
    try:
        parsed = float(value)
    except ValueError:
        parsed = value
    path = f"/v1/assessments/rounds/{round_id}/answers/{country}/{indicator}"
    echo_json(_call("PUT", hub, token, path, body={"value": parsed}).json())


@app.command("compare")
def compare(
    hub: Hub,
    token: Token,
    round_id: str,
    previous: Annotated[str | None, typer.Option("--previous")] = None,
) -> None:
    """Change since the previous round, with 95% intervals and a noise flag."""
    params = {"previous": previous} if previous else None
    path = f"/v1/assessments/rounds/{round_id}/comparison"
    echo_json(_call("GET", hub, token, path, params=params).json())


@app.command("publish")
def publish(  # noqa: PLR0917 - typer maps each parameter
    hub: Hub,
    token: Token,
    round_id: str,
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    country: Annotated[str | None, typer.Option("--country", help="M49; omit: all")] = None,
    lang: Annotated[str, typer.Option("--lang")] = "en",
    fmt: Annotated[Format, typer.Option("--format")] = "pdf",
    audience: Annotated[Audience, typer.Option("--audience")] = "restricted",
) -> None:
    """A fact sheet (html/pdf) or data file (csv/xlsx/sdmx); written only when complete."""
    params: dict[str, Any] = {"format": fmt, "lang": lang, "audience": audience}
    if country:
        params["country"] = country
    path = f"/v1/assessments/rounds/{round_id}/publication"
    what = "a fact sheet" if fmt in ("html", "pdf") else "a data file"
    typer.echo(
        f"the hub is making {what} ({fmt}, {lang}, {audience}): it may take a minute", err=True
    )
    with _Ticker() as ticker:
        response = _call("GET", hub, token, path, params=params, timeout=300)
    typer.echo(f"received {len(response.content):,} bytes after {ticker.elapsed():.0f} s", err=True)
    missing = response.headers.get("x-sauti-missing-translations")
    partial = out.with_name(out.name + ".part")
    partial.write_bytes(response.content)
    partial.replace(out)
    if missing:
        from urllib.parse import unquote

        typer.echo(f"warning: shown in English (no translation): {unquote(missing)}", err=True)
    typer.echo(json.dumps({"written": str(out), "bytes": len(response.content)}))
