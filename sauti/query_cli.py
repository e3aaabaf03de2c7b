"""`sauti query`: ask a hub a question and print the combined answer."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from contracts.v1.query import Measure

if TYPE_CHECKING:
    import httpx

    from contracts.v1 import QueryResult, QuerySpec

Format = Literal["table", "csv", "json"]


def query(  # noqa: PLR0917 - typer maps each parameter to an option
    hub: Annotated[str, typer.Option("--hub", envvar="SAUTI_HUB", help="The hub's base URL.")],
    token: Annotated[str, typer.Option("--token", envvar="SAUTI_TOKEN", help="API token.")],
    agreement: Annotated[str, typer.Option("--agreement")],
    dataset: Annotated[str, typer.Option("--dataset")],
    measure: Annotated[Measure, typer.Option("--measure")],
    rho: Annotated[float, typer.Option("--rho", help="zCDP cost each node spends.")],
    column: Annotated[str | None, typer.Option("--column")] = None,
    value: Annotated[str | None, typer.Option("--value")] = None,
    by: Annotated[str | None, typer.Option("--by", help="DIM,DIM (country, node too)")] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="DIM=LEVEL[,LEVEL], repeatable")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format")] = "table",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 120.0,
    module_version: Annotated[
        int | None,
        typer.Option("--module-version", help="--dataset names a shared module at this version."),
    ] = None,
    quantiles: Annotated[str | None, typer.Option("--quantiles", help="P,P (quantile)")] = None,
    candidates: Annotated[str | None, typer.Option("--candidates", help="X,X (quantile)")] = None,
    edges: Annotated[str | None, typer.Option("--edges", help="X,X,X (histogram)")] = None,
    weighted: Annotated[bool, typer.Option("--weighted", help="Use survey weights.")] = False,
) -> None:
    from sauti.render import render_result

    spec = _spec(
        agreement=agreement,
        dataset=dataset,
        measure=measure,
        column=column,
        value=value,
        by=by,
        where=where or [],
        rho=rho,
        module_version=module_version,
        grids={"quantiles": quantiles, "candidates": candidates, "edges": edges},
        weighted=weighted,
    )
    give_up = time.monotonic() + timeout
    base = hub.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    # The hub answers at once or after a short wait (202 while nodes are still answering);
    # then long-poll the stored result until it completes or --timeout runs out.
    result = _parse(
        _call("POST", f"{base}/v1/queries", headers, spec.model_dump(mode="json"), give_up)
    )
    while result.status == "running" and time.monotonic() < give_up:
        url = f"{base}/v1/queries/{result.query_id}"
        result = _parse(_call("GET", url, headers, None, give_up))
    if result.status == "running":
        typer.echo(render_result(result, fmt), nl=False)
        _fail(f"query_running: not complete within --timeout; query id {result.query_id}")
    typer.echo(render_result(result, fmt), nl=False)
    missing = [n for n in result.nodes if n.outcome != "ok"]
    for node in missing:
        typer.echo(
            f"note: node {node.node_id} {node.outcome} ({node.error_code}): {node.message}",
            err=True,
        )
    for answer in result.variables:
        if answer.not_collected:
            typer.echo(
                f"note: {answer.variable} is not collected at {', '.join(answer.not_collected)}",
                err=True,
            )
    if result.status == "failed":
        _fail("query_failed: no node answered")


def _spec(
    *,
    agreement: str,
    dataset: str,
    measure: str,
    column: str | None,
    value: str | None,
    by: str | None,
    where: list[str],
    rho: float,
    module_version: int | None = None,
    grids: dict[str, str | None] | None = None,
    weighted: bool = False,
) -> QuerySpec:
    from pydantic import ValidationError

    from contracts.v1 import Filter, QuerySpec

    filters = []
    for clause in where:
        dim, sep, levels = clause.partition("=")
        if not sep or not dim.strip() or not levels.strip():
            raise typer.BadParameter("use DIM=LEVEL[,LEVEL]", param_hint="--where")
        filters.append(
            {
                "column": dim.strip(),
                "levels": [lv.strip() for lv in levels.split(",") if lv.strip()],
            }
        )
    try:
        return QuerySpec.model_validate(
            {
                "agreement_id": agreement,
                "dataset": dataset,
                "measure": measure,
                "column": column,
                "value": value,
                "group_by": [d.strip() for d in by.split(",") if d.strip()] if by else [],
                "filters": [Filter.model_validate(f) for f in filters],
                "rho": rho,
                "module_version": module_version,
                # Numbers lists for quantile/histogram (docs/privacy.md); unset stay unset.
                **{k: _numbers(v, k) for k, v in (grids or {}).items() if v is not None},
                "weighted": weighted,
            }
        )
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "query" for e in exc.errors()})
        raise typer.BadParameter(f"invalid query: {', '.join(fields)}") from exc


def _numbers(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise typer.BadParameter("use comma-separated numbers", param_hint=f"--{option}") from exc


def _call(
    method: str, url: str, headers: dict[str, str], body: object, give_up: float
) -> httpx.Response:
    import httpx
    from pydantic import ValidationError

    from contracts.v1 import ErrorResponse

    wait = max(min(give_up - time.monotonic(), 30.0), 0.0)
    try:
        response = httpx.request(
            method, url, json=body, headers=headers, params={"wait": wait}, timeout=wait + 30
        )
    except httpx.HTTPError as exc:
        _fail(f"hub_unreachable: cannot reach the hub ({type(exc).__name__})")
    if response.status_code >= 400:
        try:
            error = ErrorResponse.model_validate_json(response.content).error
            _fail(f"{error.code}: {error.message}")
        except ValidationError:
            _fail(f"http_{response.status_code}: the hub refused the query")
    return response


def _parse(response: httpx.Response) -> QueryResult:
    from pydantic import ValidationError

    from contracts.v1 import QueryResult

    try:
        return QueryResult.model_validate_json(response.content)
    except ValidationError:
        _fail("bad_response: the hub's answer is not a QueryResult")
    raise AssertionError  # unreachable: _fail exits


def _fail(reason: str) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(1)
