"""Budgets are exact decimals end to end: totals equal the sum of charges to the last digit.

In doubles, 37 charges of 0.01 add up to 0.37000000000000016 and three of 0.1 to
0.30000000000000004, so a budget filled exactly showed an overspend. The ledger charges the
shortest decimal of each signed cost and adds decimals (SQLite: text and an exact aggregate;
PostgreSQL: NUMERIC); every view — API, CLI, steward page, metrics, audit export — shows the
same exact amounts.
"""

import json
import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from contracts import budget as exact
from contracts.v1.audit import AuditEntry, AuditExportHeader
from node.audit import service as audit
from node.auth import service as auth
from node.db import exact_sum, transaction
from node.ledger import service as ledger
from node.ledger.exceptions import BudgetExhausted
from node.ledger.models import BudgetCharge, BudgetRow
from node.metrics import LedgerCollector
from sauti.cli import app as cli
from tests.node.conftest import Node, make_node
from tests.web.node_web_support import steward_node, web_client

# (cost, charges): float sums of these drift above the budget they fill exactly.
FILLS = ((0.01, 37), (0.1, 3), (0.07, 10), (0.0123456789012345, 81))


def _charge(node: Node, cost: float) -> None:
    with transaction(node.settings.db_url) as session:
        ledger.reserve(
            session,
            query_id=uuid.uuid4(),
            request_digest="d" * 64,
            terms=node.terms,
            rho=cost,
        )


@pytest.mark.parametrize("period", ["validity", "quarter"])
@pytest.mark.parametrize(("cost", "charges"), FILLS)
def test_equal_charges_that_fill_the_budget_spend_it_exactly(
    tmp_path: Path, db_url: str, cost: float, charges: int, period: str
) -> None:
    """Both ways the ledger totals a period: the locked running total, a sum of charges."""
    drifted = sum([cost] * charges)
    budget = float(exact.rho(cost) * charges)
    assert drifted != budget  # the float sum would show this budget overspent (or short)
    node = make_node(
        tmp_path / "n",
        db_url,
        rho_budget=budget,
        rho_per_query_max=cost,
        budget_period=period,
    )
    for _ in range(charges):
        _charge(node, cost)
    with pytest.raises(BudgetExhausted):
        _charge(node, cost)
    with pytest.raises(BudgetExhausted), transaction(node.settings.db_url) as session:
        ledger.check_covers(session, terms=node.terms, rho=5e-324, now=datetime.now(UTC))

    line = ledger.budget_report(home=node.home, settings=node.settings)[0]
    assert (line.rho_spent, line.rho_remaining, line.queries) == (exact.rho(budget), 0, charges)
    assert line.rho_spent == line.rho_budget
    detail = ledger.budget_detail(home=node.home, agreement_id="mou-1", settings=node.settings)
    assert sum(c.rho for c in detail.charges) == line.rho_spent
    assert [s.rho for s in detail.by_version] == [line.rho_spent]
    with transaction(node.settings.db_url) as session:
        stored = session.execute(select(BudgetRow.rho_spent)).scalar_one()
        summed = session.execute(select(exact_sum(BudgetCharge.rho))).scalar_one()
    assert stored == summed == line.rho_spent


def test_ledger_totals_equal_the_exact_sum_of_any_charges(tmp_path: Path, db_url: str) -> None:
    rnd = random.Random(26)
    # Costs of every shape a double can take: short decimals, 17 digits, tiny and large.
    costs = [
        rnd.choice(
            (
                round(rnd.uniform(0.001, 0.5), rnd.randint(1, 4)),
                rnd.uniform(1e-6, 0.5),
                rnd.uniform(1e-12, 1e-9),
                float(rnd.randint(1, 3)),
            )
        )
        for _ in range(150)
    ]
    node = make_node(tmp_path / "n", db_url, rho_budget=1000.0, rho_per_query_max=10.0)
    for cost in costs:
        _charge(node, cost)
    line = ledger.budget_report(home=node.home, settings=node.settings)[0]
    # Checked against rational arithmetic, independent of the decimal code under test.
    assert Fraction(line.rho_spent) == sum(Fraction(repr(c)) for c in costs)
    assert Fraction(line.rho_remaining) == Fraction(1000) - sum(Fraction(repr(c)) for c in costs)
    detail = ledger.budget_detail(home=node.home, agreement_id="mou-1", settings=node.settings)
    assert [c.rho for c in detail.charges] == [Decimal(repr(c)) for c in costs]


def test_every_view_shows_a_filled_budget_as_filled(tmp_path: Path) -> None:
    """Real queries fill 0.37 with 0.01: API, CLI, page, metrics and export all say 0.37."""
    home = tmp_path / "n"  # the database where the CLI looks for it by default
    node = steward_node(
        home, f"sqlite:///{home}/node.sqlite", rho_budget=0.37, rho_per_query_max=0.01
    )
    for _ in range(37):
        assert node.post(node.request(spec=node.spec(rho=0.01), rho=0.01)).status_code == 200
    refused = node.post(node.request(spec=node.spec(rho=0.01), rho=0.01))
    assert refused.json()["error"]["code"] == "budget_exhausted"

    token = auth.create_token(database_url=node.settings.db_url, name="auditor")
    bearer = {"Authorization": f"Bearer {token}"}
    (line,) = node.client.request("GET", "/v1/steward/budget", headers=bearer).json()
    assert (line["rho_budget"], line["rho_spent"], line["rho_remaining"]) == ("0.37", "0.37", "0")
    detail = node.client.request(
        "GET", "/v1/steward/agreements/mou-1/budget", headers=bearer
    ).json()
    assert {c["rho"] for c in detail["charges"]} == {"0.01"}
    assert sum(Decimal(c["rho"]) for c in detail["charges"]) == Decimal(line["rho_spent"])

    runner = CliRunner()
    shown = runner.invoke(cli, ["node", "budget", "--home", str(node.home), "--json"])
    assert json.loads(shown.output)[0]["rho_spent"] == "0.37"
    table = runner.invoke(cli, ["node", "agreements", "budget", "mou-1", "--home", str(node.home)])
    assert "spent rho 0.370 of 0.370, 0.000 left after 37 queries" in table.output

    (gauge, _queries) = LedgerCollector(node.settings.db_url).collect()
    assert [s.value for s in gauge.samples] == [0.37]

    lines = list(audit.export_lines(home=node.home, settings=node.settings))
    header = AuditExportHeader.model_validate_json(lines[0])
    assert json.loads(lines[0])["budgets"][0]["rho_spent"] == "0.37"
    charged = [AuditEntry.model_validate_json(x) for x in lines[1:]]
    logged = exact.total(e.details["rho"] for e in charged if e.action == "budget_charged")
    assert header.budgets[0].rho_spent == logged == Decimal("0.37")

    with web_client(node.client.app) as browser:
        browser.login()
        page = browser.get("/steward/agreements/mou-1").text
    assert "0.370 of 0.370 used, 0.000 left" in page
    assert "0.37000000000000016" not in page
