"""Entry point of the `sauti` command: one sub-command group per role, each imported only
when it runs (sauti.lazy), so `sauti --help` and `sauti node ...` start at once."""

from typing import ClassVar

import typer

from sauti.lazy import MARKUP, Lazy, LazyGroup


class _Roles(LazyGroup):
    lazy: ClassVar[dict[str, Lazy]] = {
        "query": Lazy("sauti.query_cli:query", "Ask the hub a DP aggregate question."),
        "demo": Lazy(
            "sauti.demo.cli:demo", "Three CSO nodes and a hub answering DP questions end to end."
        ),
        "node": Lazy("sauti.node_cli:app", "Run and govern a CSO node."),
        "hub": Lazy("sauti.hub_cli:app", "Run the secretariat's hub."),
        "audit": Lazy("sauti.audit_cli:app", "Verify, search, export and reconcile audit logs."),
        "assessment": Lazy("sauti.assessment_cli:app", "Assessments and fact sheets."),
    }


def _roles() -> None:
    pass  # typer makes a group only of an app with a callback or registered commands


app = typer.Typer(
    cls=_Roles,
    callback=_roles,
    help="Sauti: federated, differentially private citizen-data sharing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=MARKUP,
)
