"""Run the whole federation on localhost: three CSO nodes, a hub, an agreement, DP questions."""

import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from contracts.budget import figure as rho
from contracts.v1 import (
    AgreementTerms,
    DatasetRef,
    Filter,
    NodeInfo,
    Party,
    QueryResult,
    QuerySpec,
    SignedAgreement,
)
from contracts.v1.agreement import Aggregation
from hub import home as hub_home
from hub.app import create_app as create_hub_app
from hub.auth import organisations, users
from hub.auth import tokens as auth_tokens
from hub.auth.schemas import OrganisationCreate, RoleScope, UserCreate
from hub.db import init_db, make_engine
from hub.settings import HubSettings
from node import home as node_home
from node.agreements import service as node_agreements
from node.app import create_app as create_node_app
from node.auth import service as node_auth
from node.datasets import service as node_datasets
from node.ledger import service as node_ledger
from node.ledger.schemas import BudgetLine
from node.settings import NodeSettings
from sauti.demo import DEFAULT_ROWS
from sauti.demo.codebook import CONTRACT_VERSION, DATASET
from sauti.demo.data import DemoNode, demo_nodes
from sauti.render import render_result
from sauti.serve import serve_in_thread

HUB_ID = "lnob-hub"
AGREEMENT_ID = "lnob-basic-services-2026"
SECRETARIAT = "LNOB Partnership Secretariat"
ANALYST_ORG = "Nepal Central Bureau of Statistics"
NSOS = (
    ("Nepal Central Bureau of Statistics", "524"),
    ("Bangladesh Bureau of Statistics", "050"),
    ("Kenya National Bureau of Statistics", "404"),
)
RHO_PER_QUESTION = 0.05
HTTP_TIMEOUT_SECONDS = 60.0


class DemoError(RuntimeError):
    """A step of the demo failed; the message names the step and the server's error code."""


@dataclass(frozen=True)
class Question:
    slug: str
    title: str
    spec: QuerySpec


@dataclass(frozen=True)
class Federation:
    """A running demo federation: URLs, homes and the tokens each role uses."""

    hub_url: str
    hub_home: Path
    node_urls: dict[str, str]
    node_homes: dict[str, Path]
    agreement_id: str
    admin_token: str
    secretariat_token: str
    analyst_token: str


@dataclass
class DemoReport:
    """What a demo run produced, for the caller (and the end-to-end test) to inspect."""

    answers: list[tuple[Question, QueryResult]] = field(default_factory=list)
    budgets: dict[str, list[BudgetLine]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def questions(agreement_id: str = AGREEMENT_ID) -> list[Question]:
    """The analyst's questions: the LNOB headline disaggregations."""

    def spec(**kwargs: Any) -> QuerySpec:
        return QuerySpec(agreement_id=agreement_id, dataset=DATASET, rho=RHO_PER_QUESTION, **kwargs)

    return [
        Question(
            slug="violence_by_group_country",
            title="Share who faced violence or harassment in the past year, by group and country",
            spec=spec(
                measure="share", column="violence_12m", value="yes", group_by=("group", "country")
            ),
        ),
        Question(
            slug="count_by_group_sex",
            title="Respondents by group and sex",
            spec=spec(measure="count", group_by=("group", "sex")),
        ),
        Question(
            slug="health_access_by_group",
            title="Share who could get health services when needed, by group",
            spec=spec(measure="share", column="health_access", value="yes", group_by=("group",)),
        ),
        Question(
            slug="reported_violence_by_group",
            title="Of those who faced violence, share who reported it, by group",
            spec=spec(
                measure="share",
                column="reported_violence",
                value="yes",
                group_by=("group",),
                filters=(Filter(column="violence_12m", levels=("yes",)),),
            ),
        ),
    ]


def demo_terms(
    *,
    nodes: Sequence[DemoNode],
    hub_id: str = HUB_ID,
    now: datetime | None = None,
    aggregation: Aggregation = "per_node",
) -> AgreementTerms:
    """The MoU the secretariat drafts: what may be asked, by whom, at what privacy cost."""
    now = now or datetime.now(UTC)
    contract = nodes[0].contract
    dims = tuple(c.name for c in contract.columns if c.type == "categorical" and c.queryable)
    return AgreementTerms(
        agreement_id=AGREEMENT_ID,
        version=1,
        title="LNOB basic services and safety: cross-country DP statistics",
        purpose="Disaggregated SDG 1, 3, 5 and 16 indicators for groups left behind.",
        hub_id=hub_id,
        parties=(
            Party(organisation=SECRETARIAT, role="secretariat"),
            *(
                Party(organisation=n.organisation, role="cso", country=n.country, node_id=n.node_id)
                for n in nodes
            ),
            *(Party(organisation=org, role="nso", country=m49) for org, m49 in NSOS),
        ),
        datasets=(DatasetRef(name=DATASET, contract_version=CONTRACT_VERSION),),
        measures=("count", "share"),
        columns=dims,
        dims=dims,
        max_dims=3,
        min_cell_size=30,
        max_ci_relative_width=1.0,
        # Small groups are the point of the partnership: judge the pooled cell, not each
        # CSO's share of it, so a group small at one CSO still shows across CSOs.
        suppression="combined",
        aggregation=aggregation,
        rho_per_query_max=0.1,
        rho_budget=1.0,
        # The national statistics offices ask ad-hoc questions; the secretariat runs the
        # partnership's assessment rounds (`sauti assessment round ...`) under the same MoU.
        analyst_organisations=(*(org for org, _ in NSOS), SECRETARIAT),
        dissemination="partners",
        # A day of slack so machines with slightly wrong clocks still agree it is valid.
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )


def _check(response: httpx.Response, step: str) -> Any:
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        reason = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        reason = f"HTTP {response.status_code}"
    raise DemoError(f"{step} failed ({reason})")


def _create_token(settings: HubSettings, *, name: str, organisation: str, role: str) -> str:
    # The same service `sauti hub token create` uses, on the hub's own database.
    engine = make_engine(settings.effective_database_url)
    try:
        sessions = init_db(engine)
        with sessions() as session:
            return auth_tokens.create_token(
                session=session, name=name, organisation=organisation, role=role
            )
    finally:
        engine.dispose()


@contextmanager
def federation(
    *,
    work: Path,
    nodes: Sequence[DemoNode],
    hub_database_url: str | None = None,
    log_level: str = "warning",
    access_log: bool = False,
) -> Iterator[Federation]:
    """Set up and serve the hub and `nodes` under `work` until the block exits.

    Every step a real deployment does over the network goes over HTTP here too: node
    registration, agreement creation, posting node signatures and the analyst's queries.
    Steps that belong to one machine (init, import, pinning, the steward's signature)
    call that machine's services directly, as its CLI would.
    """
    hub_dir = work / "hub"
    identity = hub_home.init_home(hub_dir, hub_id=HUB_ID)
    # The demo serves plain HTTP on localhost: a Secure session cookie would never come back.
    hub_settings = HubSettings(
        home=hub_dir, database_url=hub_database_url, session_cookie_secure=False
    )

    node_homes: dict[str, Path] = {}
    for node in nodes:
        home = work / "nodes" / node.node_id
        node_home.init_home(
            home, name=node.organisation, country=node.country, node_id=node.node_id
        )
        # Enrollment: the steward pins the one hub this node will answer to.
        node_home.pin_hub(home, hub_id=identity.hub_id, public_jwk=identity.public_jwk)
        node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
        node_homes[node.node_id] = home

    with ExitStack() as stack:
        node_urls = {
            node_id: stack.enter_context(
                serve_in_thread(
                    create_node_app(NodeSettings(home=home)),
                    log_level=log_level,
                    access_log=access_log,
                )
            ).url
            for node_id, home in node_homes.items()
        }
        hub_url = stack.enter_context(
            serve_in_thread(
                create_hub_app(hub_settings), log_level=log_level, access_log=access_log
            )
        ).url
        # The hub's URL is known only once it serves: re-pin so nodes can reach it themselves.
        for home in node_homes.values():
            node_home.pin_hub(
                home, hub_id=identity.hub_id, public_jwk=identity.public_jwk, url=hub_url
            )

        admin = _create_token(
            hub_settings, name="demo admin", organisation=SECRETARIAT, role="admin"
        )
        secretariat = _create_token(
            hub_settings, name="demo secretariat", organisation=SECRETARIAT, role="secretariat"
        )
        analyst = _create_token(
            hub_settings, name="demo analyst", organisation=ANALYST_ORG, role="analyst"
        )

        client = stack.enter_context(httpx.Client(timeout=HTTP_TIMEOUT_SECONDS))
        for node_id, url in node_urls.items():
            info = NodeInfo.model_validate(
                _check(client.get(f"{url}/v1/info"), f"info of {node_id}")
            )
            _check(
                client.post(
                    f"{hub_url}/v1/nodes",
                    headers=_bearer(admin),
                    json={
                        "node_id": info.node_id,
                        "name": info.name,
                        "country": info.country,
                        "url": url,
                        "public_jwk": info.public_jwk,
                    },
                ),
                f"registering {node_id} at the hub",
            )

        # The demo's CSOs allow secure aggregation: its counts and shares across CSOs carry
        # the noise of one central release; the split by country falls back, and says so.
        terms = demo_terms(nodes=nodes, hub_id=identity.hub_id, aggregation="secure")
        # The secretariat drafts the MoU, then proposes it: the hub signs the frozen text.
        _check(
            client.post(
                f"{hub_url}/v1/agreements/drafts",
                headers=_bearer(secretariat),
                json=terms.model_dump(mode="json"),
            ),
            "drafting the agreement",
        )
        created = _check(
            client.post(
                f"{hub_url}/v1/agreements/{terms.agreement_id}/versions/{terms.version}/propose",
                headers=_bearer(secretariat),
            ),
            "proposing the agreement",
        )
        signed = SignedAgreement.model_validate(created["agreement"])
        for node_id, home in node_homes.items():
            signature = node_agreements.sign(home=home, agreement=signed)
            _check(
                client.post(
                    f"{hub_url}/v1/agreements/{terms.agreement_id}/signatures",
                    headers=_bearer(secretariat),
                    json=signature.model_dump(mode="json"),
                ),
                f"posting the signature of {node_id}",
            )

        yield Federation(
            hub_url=hub_url,
            hub_home=hub_dir,
            node_urls=node_urls,
            node_homes=node_homes,
            agreement_id=terms.agreement_id,
            admin_token=admin,
            secretariat_token=secretariat,
            analyst_token=analyst,
        )


def hub_web_logins(hub_home: Path, nodes: Sequence[DemoNode]) -> tuple[str, dict[str, str]]:
    """People who log in to the hub's web pages: one password, user name per role."""
    password = secrets.token_urlsafe(12)
    steward = nodes[0]
    people: dict[str, tuple[str, RoleScope]] = {
        "analyst": (ANALYST_ORG, RoleScope(role="analyst")),
        "secretariat": (SECRETARIAT, RoleScope(role="secretariat")),
        "auditor": (SECRETARIAT, RoleScope(role="auditor")),
        "steward": (steward.node_id, RoleScope(role="steward", node_id=steward.node_id)),
    }
    engine = make_engine(HubSettings(home=hub_home).effective_database_url)
    try:
        with init_db(engine)() as session:
            organisations.create_organisation(
                session=session,
                body=OrganisationCreate(
                    slug=steward.node_id,
                    name=steward.organisation,
                    kind="cso",
                    country=steward.country,
                ),
                actor="system:demo",
            )
            for username, (organisation, role) in people.items():
                users.create_user(
                    session=session,
                    body=UserCreate(username=username, organisation=organisation, roles=(role,)),
                    actor="system:demo",
                    password=password,
                )
    finally:
        engine.dispose()
    return password, {name: role.role for name, (_, role) in people.items()}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ask(client: httpx.Client, fed: Federation, spec: QuerySpec) -> QueryResult:
    """Submit `spec` to the hub as the analyst; the combined, DP result."""
    response = client.post(
        f"{fed.hub_url}/v1/queries",
        headers=_bearer(fed.analyst_token),
        json=spec.model_dump(mode="json"),
    )
    result = QueryResult.model_validate(_check(response, "the query"))
    # 202: still running after the hub's wait; long-poll until it completes (or its deadline).
    while result.status == "running":
        response = client.get(
            f"{fed.hub_url}/v1/queries/{result.query_id}",
            headers=_bearer(fed.analyst_token),
            params={"wait": 30},
        )
        result = QueryResult.model_validate(_check(response, "the query"))
    return result


def run_demo(
    *,
    out: Path,
    rows: int = DEFAULT_ROWS,
    serve: bool = False,
    echo: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> DemoReport:
    """Build the federation in a temporary folder, ask the questions, write results to `out`.

    With `serve`, the servers stay up after the questions until `stop` is set (or Ctrl-C).
    """
    report = DemoReport()
    out.mkdir(parents=True, exist_ok=True)
    echo(f"Generating synthetic survey data ({rows:,} respondents per node)...")
    nodes = demo_nodes(rows=rows)
    with tempfile.TemporaryDirectory(prefix="sauti-demo-") as tmp:
        echo("Starting three CSO nodes and the hub on localhost...")
        with (
            federation(work=Path(tmp), nodes=nodes) as fed,
            httpx.Client(timeout=HTTP_TIMEOUT_SECONDS) as client,
        ):
            for node in nodes:
                echo(
                    f"  node {node.node_id:<26} {node.organisation}  {fed.node_urls[node.node_id]}"
                )
            echo(f"  hub  {HUB_ID:<26} {fed.hub_url}")
            echo(
                f"Agreement {fed.agreement_id} signed by the hub and all three nodes; "
                f"analyst: {ANALYST_ORG}.\n"
            )
            for question in questions(fed.agreement_id):
                result = ask(client, fed, question.spec)
                report.answers.append((question, result))
                echo(f"== {question.title}")
                echo(render_result(result, "table"))
                for fmt in ("csv", "json"):
                    path = out / f"{question.slug}.{fmt}"
                    path.write_text(render_result(result, fmt), encoding="utf-8")
                    report.files.append(path)

            echo("== Remaining privacy budget (zCDP rho) at each node")
            for node_id, home in fed.node_homes.items():
                lines = node_ledger.budget_report(home=home)
                report.budgets[node_id] = lines
                for line in lines:
                    echo(
                        f"  {node_id:<26} {line.agreement_id} v{line.version}: "
                        f"spent {rho(line.rho_spent)} of {rho(line.rho_budget)}, "
                        f"remaining {rho(line.rho_remaining)} after {line.queries} queries"
                    )
            echo(f"\nResults written to {out.resolve()} (CSV and JSON per question).")

            if serve:
                echo("\nServing until Ctrl-C:")
                echo(f"  hub   {fed.hub_url}   (OpenAPI document: {fed.hub_url}/openapi.json)")
                password, logins = hub_web_logins(fed.hub_home, nodes)
                echo(f"  hub web pages: {fed.hub_url}/login   password for each: {password}")
                for username, role in logins.items():
                    echo(f"    user {username:<12} ({role})")
                for node_id, url in fed.node_urls.items():
                    echo(f"  node  {url}   {node_id}")
                first = nodes[0].node_id
                node_auth.create_account(
                    settings=NodeSettings(home=fed.node_homes[first]),
                    username="steward",
                    password=password,
                    actor="system:demo",
                )
                echo(
                    f"  node steward pages ({first}): {fed.node_urls[first]}/steward/   "
                    "user steward (same password)"
                )
                echo(f"  analyst token ({ANALYST_ORG}): {fed.analyst_token}")
                echo(f"  secretariat token ({SECRETARIAT}): {fed.secretariat_token}")
                echo(
                    f"  assessment: SAUTI_HUB={fed.hub_url} SAUTI_TOKEN={fed.secretariat_token} "
                    f"sauti assessment round plan lnob-core 2026 "
                    f"--country 524={fed.agreement_id} --country 050={fed.agreement_id}"
                )
                echo(
                    f"  try: SAUTI_TOKEN={fed.analyst_token} sauti query --hub {fed.hub_url} "
                    f"--agreement {fed.agreement_id} --dataset {DATASET} "
                    "--measure count --by group,country --rho 0.05"
                )
                _wait(stop or threading.Event())
    return report


def _wait(stop: threading.Event) -> None:
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        return
