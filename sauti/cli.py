"""Entry point of the `sauti` command: one sub-command group per role, each imported only
when it runs (sauti.lazy), so `sauti --help` and `sauti node ...` start at once.

`app` is the full install's command; `node_app` and `hub_app` are the same command with one
side's roles only, the `sauti` of the node-only and hub-only installs (packaging/).
"""

from typing import ClassVar

import typer

from sauti.lazy import MARKUP, Lazy, LazyGroup

ROLES: dict[str, Lazy] = {
    "query": Lazy("sauti.query_cli:query", "Ask the hub a DP aggregate question."),
    "demo": Lazy(
        "sauti.demo.cli:demo", "Three CSO nodes and a hub answering DP questions end to end."
    ),
    "node": Lazy("sauti.node_cli:app", "Run and govern a CSO node."),
    "hub": Lazy("sauti.hub_cli:app", "Run the secretariat's hub."),
    "audit": Lazy("sauti.audit_cli:app", "Verify, search, export and reconcile audit logs."),
    "assessment": Lazy("sauti.assessment_cli:app", "Assessments and fact sheets."),
}
NODE_ROLES = ("node", "audit")
HUB_ROLES = ("hub", "query", "audit", "assessment")


def _roles() -> None:
    pass  # typer makes a group only of an app with a callback or registered commands


def roles_app(*names: str) -> typer.Typer:
    """The `sauti` command with these roles."""

    class Roles(LazyGroup):
        lazy: ClassVar[dict[str, Lazy]] = {name: ROLES[name] for name in names}

    return typer.Typer(
        cls=Roles,
        callback=_roles,
        help="Sauti: federated, differentially private citizen-data sharing.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=MARKUP,
    )


app = roles_app(*ROLES)
node_app = roles_app(*NODE_ROLES)
hub_app = roles_app(*HUB_ROLES)
