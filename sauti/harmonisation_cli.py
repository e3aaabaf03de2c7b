"""`sauti node map|modules ...` and `sauti hub modules ...`: shared modules and mappings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sauti import hub_options
from sauti.cli_common import echo_json, fail
from sauti.node_options import DEFAULT_HOME, Home, Json, settings_for

if TYPE_CHECKING:
    from node.exceptions import NodeError
    from node.harmonisation.schemas import ValidationReport

map_app = typer.Typer(no_args_is_help=True, help="Map a local dataset onto a shared module.")
modules_app = typer.Typer(no_args_is_help=True, help="Shared modules pinned at this node.")
hub_modules_app = typer.Typer(no_args_is_help=True, help="Shared modules shipped by the hub.")

ModuleName = Annotated[str, typer.Option("--module", help="Module name, e.g. lnob_core.")]
Version = Annotated[
    int | None, typer.Option("--version", min=1, help="Module version (newest held if omitted).")
]


def _node_error(exc: NodeError) -> None:
    fail(f"{exc.code}: {exc.message}")


def _version(home: Path, name: str, version: int | None) -> int:
    from node.harmonisation import service as harmonisation

    if version is not None:
        return version
    held = [m.version for m in harmonisation.list_modules(home=home) if m.name == name]
    if not held:
        fail(f"module_not_held: module {name} is not held here (sauti node modules fetch)")
    return max(held)


# --- sauti node map ------------------------------------------------------------------------


@map_app.command("draft")
def draft(
    *,
    module: ModuleName,
    dataset: Annotated[str, typer.Option("--dataset", help="The local dataset to map.")],
    version: Version = None,
    reference_year: Annotated[
        int | None, typer.Option("--reference-year", help="For ages from birth years.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of the node home.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing mapping.")] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """Propose a mapping from names, labels and levels; edit the YAML, then validate it."""
    from node.exceptions import NodeError
    from node.harmonisation import service as harmonisation
    from node.harmonisation import store

    try:
        chosen = _version(home, module, version)
        mapping = harmonisation.draft_mapping(
            home=home,
            module=module,
            version=chosen,
            dataset=dataset,
            reference_year=reference_year,
        )
        if out is not None:
            out.write_text(store.mapping_yaml(mapping), encoding="utf-8")
            path = out
        else:
            path = harmonisation.save_draft(home=home, mapping=mapping, force=force)
    except NodeError as exc:
        _node_error(exc)
    statuses = [mapping.status(v) for v in mapping.variables]
    typer.echo(
        f"draft mapping of {dataset} onto {module} v{chosen} written to {path}: "
        f"{statuses.count('mapped')} mapped, {statuses.count('derived')} derived, "
        f"{statuses.count('not_collected')} not collected. Review it, then "
        "`sauti node map validate`."
    )


@map_app.command("validate")
def validate(
    module: ModuleName,
    version: Version = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Validate this file, not the installed one.")
    ] = None,
    as_json: Json = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """Errors naming each variable, then unmapped levels and rows affected (local only)."""
    from node.exceptions import NodeError
    from node.harmonisation import service as harmonisation

    try:
        chosen = _version(home, module, version)
        mapping = harmonisation.load_mapping(home=home, module=module, version=chosen, path=file)
        report = harmonisation.validate_mapping(home=home, mapping=mapping)
    except NodeError as exc:
        _node_error(exc)
    if as_json:
        echo_json(report.model_dump(mode="json"))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: ValidationReport) -> None:
    typer.echo(f"mapping of {report.dataset} onto {report.module} v{report.version}")
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    if report.errors:
        return
    typer.echo(f"{report.rows} rows (shown here only; never sent)")
    for item in report.variables:
        line = f"  {item.variable}: {item.status}"
        if item.status != "not_collected":
            line += f", {item.rows_missing} rows missing ({item.share_missing:.1%})"
        if item.unmapped_levels:
            line += f", unmapped levels: {', '.join(item.unmapped_levels)}"
        typer.echo(line)


@map_app.command("set")
def set_mapping(
    file: Annotated[Path, typer.Argument(help="The edited mapping (YAML).")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Install an edited mapping once it has no errors."""
    from node.exceptions import NodeError
    from node.harmonisation import service as harmonisation

    try:
        mapping = harmonisation.install_mapping(home=home, path=file, settings=settings_for(home))
    except NodeError as exc:
        _node_error(exc)
    typer.echo(f"mapping onto {mapping.module} v{mapping.version} installed")


@map_app.command("show")
def show(module: ModuleName, version: Version = None, home: Home = DEFAULT_HOME) -> None:
    """Print the installed mapping (YAML)."""
    from node.exceptions import NodeError
    from node.harmonisation import service as harmonisation
    from node.harmonisation import store

    try:
        mapping = harmonisation.load_mapping(
            home=home, module=module, version=_version(home, module, version)
        )
    except NodeError as exc:
        _node_error(exc)
    typer.echo(store.mapping_yaml(mapping), nl=False)


# --- sauti node modules --------------------------------------------------------------------


@modules_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="Module name, e.g. lnob_core.")],
    version: Annotated[int, typer.Option("--version", min=1)] = 1,
    home: Home = DEFAULT_HOME,
) -> None:
    """Fetch a module from the pinned hub and pin it once the hub signature verifies."""
    from node.exceptions import NodeError
    from node.harmonisation import service as harmonisation

    try:
        module = harmonisation.fetch_module(
            home=home, name=name, version=version, settings=settings_for(home)
        )
    except NodeError as exc:
        _node_error(exc)
    typer.echo(f"module {module.name} v{module.version} pinned ({len(module.variables)} variables)")


@modules_app.command("add")
def add(
    file: Annotated[
        Path, typer.Argument(help="A hub-signed module (`sauti hub modules show --signed`).")
    ],
    home: Home = DEFAULT_HOME,
) -> None:
    """Pin a hub-signed module from a file (for nodes without a connection to the hub)."""
    from node.exceptions import NodeError
    from node.harmonisation import service as harmonisation

    try:
        module = harmonisation.add_module(home=home, path=file, settings=settings_for(home))
    except NodeError as exc:
        _node_error(exc)
    typer.echo(f"module {module.name} v{module.version} pinned ({len(module.variables)} variables)")


@modules_app.command("list")
def list_held(as_json: Json = False, home: Home = DEFAULT_HOME) -> None:
    """Modules pinned here, with the status of this node's mapping per variable."""
    from node.exceptions import NodeError
    from node.harmonisation import service as harmonisation

    try:
        modules = harmonisation.list_modules(home=home)
        coverage = {(c.module, c.version): c for c in harmonisation.coverage(home=home)}
    except NodeError as exc:
        _node_error(exc)
    rows = [
        {
            "module": m.name,
            "version": m.version,
            "title": m.title,
            "mapping": dict(coverage[(m.name, m.version)].variables)
            if (m.name, m.version) in coverage
            else None,
        }
        for m in modules
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        mapped = "no mapping" if row["mapping"] is None else "mapped"
        typer.echo(f"{row['module']} v{row['version']}  {row['title']}  ({mapped})")


@modules_app.command("publish")
def publish(home: Home = DEFAULT_HOME) -> None:
    """Send the hub this node's coverage: per module variable mapped/derived/not collected."""
    from node.exceptions import NodeError
    from node.harmonisation import service as harmonisation

    try:
        count = harmonisation.publish_coverage(home=home, settings=settings_for(home))
    except NodeError as exc:
        _node_error(exc)
    typer.echo(f"coverage of {count} mapping(s) published to the hub (no data, no counts)")


# --- sauti hub modules ---------------------------------------------------------------------


@hub_modules_app.command("list")
def hub_list(as_json: Json = False) -> None:
    """Modules shipped with this hub."""
    from hub.exceptions import HubError
    from hub.harmonisation import service as hub_modules

    try:
        summaries = hub_modules.list_modules()
    except HubError as exc:
        fail(f"{exc.code}: {exc.message}")
    if as_json:
        echo_json([s.model_dump(mode="json") for s in summaries])
        return
    for item in summaries:
        typer.echo(f"{item.name} v{item.version}  {item.title}  ({len(item.variables)} variables)")


@hub_modules_app.command("show")
def hub_show(
    name: Annotated[str, typer.Argument()],
    version: Annotated[int | None, typer.Option("--version", min=1)] = None,
    signed: Annotated[
        bool, typer.Option("--signed", help="Print the hub-signed document for offline nodes.")
    ] = False,
    home: hub_options.HomeFolder = hub_options.DEFAULT_HOME,  # its key, for --signed only
) -> None:
    """A module's variables, levels, definitions and sources (JSON)."""
    from hub.exceptions import HubError
    from hub.harmonisation import service as hub_modules
    from hub.home import load_key

    try:
        module = hub_modules.get_module(name=name, version=version)
        if signed:
            document = hub_modules.signed_module(
                name=module.name, version=module.version, key=load_key(home)
            )
            typer.echo(json.dumps(document.model_dump()))
            return
    except HubError as exc:
        fail(f"{exc.code}: {exc.message}")
    echo_json(module.model_dump(mode="json", exclude_defaults=True))


@hub_modules_app.command("coverage")
def hub_coverage(
    name: Annotated[str, typer.Argument()],
    version: Annotated[int | None, typer.Option("--version", min=1)] = None,
    as_json: Json = False,
    home: hub_options.Home = hub_options.DEFAULT_HOME,
) -> None:
    """Per variable, which nodes and countries can answer it (from what nodes published)."""
    from hub.db import init_db, make_engine
    from hub.exceptions import HubError
    from hub.harmonisation import service as hub_modules
    from hub.settings import HubSettings

    engine = make_engine(HubSettings(home=home).effective_database_url)
    try:
        with init_db(engine)() as session:
            view = hub_modules.coverage(session=session, name=name, version=version)
    except HubError as exc:
        fail(f"{exc.code}: {exc.message}")
    finally:
        engine.dispose()
    if as_json:
        echo_json(view.model_dump(mode="json"))
        return
    typer.echo(f"{view.module} v{view.version}")
    for variable in view.variables:
        nodes = ", ".join(f"{n.node_id}:{n.status}" for n in variable.nodes) or "no node"
        countries = ", ".join(variable.countries) or "none"
        typer.echo(f"  {variable.variable}: countries {countries}; {nodes}")
