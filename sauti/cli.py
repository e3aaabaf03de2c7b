"""Entry point of the `sauti` command: one sub-command group per role."""

import typer

from sauti import assessment_cli, audit_cli, harmonisation_cli, hub_cli, node_cli, query_cli
from sauti.demo import cli as demo_cli

app = typer.Typer(
    help="Sauti: federated, differentially private citizen-data sharing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(node_cli.app, name="node", help="Run and govern a CSO node.")
app.add_typer(hub_cli.app, name="hub", help="Run the secretariat's hub.")
harmonisation_cli.register(node=node_cli.app, hub=hub_cli.app)
app.add_typer(audit_cli.app, name="audit", help="Verify, search, export and reconcile audit logs.")
app.command("query", help="Ask the hub a DP aggregate question.")(query_cli.query)
app.add_typer(assessment_cli.app, name="assessment", help="Assessments and fact sheets.")
app.command("demo", help="Three CSO nodes and a hub answering DP questions end to end.")(
    demo_cli.demo
)
