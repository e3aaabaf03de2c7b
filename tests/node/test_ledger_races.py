"""The budget under load and crashes, on SQLite and PostgreSQL (the `db_url` fixture).

* 100 concurrent requests of rho 0.01 against a budget of 0.37, which admits exactly 37
  (in doubles, 37 x 0.01 adds up to 0.37000000000000016 and would refuse the 37th or show
  an overspend; the ledger adds exact decimals): 37 answered, 63 refused, spent == 0.37.
* A node process killed (os._exit) between the charge and the response: the charge stands,
  the ledger is consistent, and a retry of the same query id is answered without a second
  charge; a further retry returns the stored release.
"""

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import func, select

from contracts import signing
from contracts.v1 import Signed
from node.db import dispose_engines, exact_sum, transaction
from node.exceptions import NodeError
from node.ledger.models import BudgetCharge, ReleaseRow
from node.ledger.service import budget_report
from node.queries.service import handle_query
from tests.node.conftest import make_node

RHO = 0.01
ADMITTED = 37
REQUESTS = 100

CRASH = """
import os, sys
from contracts.v1 import Signed
from node.privacy import engine
from node.queries.service import handle_query
from node.settings import NodeSettings

def crash(*_args, **_kwargs):
    # Between the committed charge and the release: the process dies, nothing answered.
    os._exit(3)

engine.release_exact = crash
settings = NodeSettings(home=sys.argv[1], database_url=sys.argv[2])
handle_query(settings=settings, signed=Signed(jws=sys.argv[3]))
print("answered")
"""


def test_hundred_concurrent_requests_against_a_budget_for_37(tmp_path, db_url) -> None:
    n = make_node(tmp_path / "n", db_url, rho_budget=0.37, rho_per_query_max=RHO)
    spec = n.spec(group_by=("sex",), rho=RHO)
    tokens = [Signed(jws=signing.sign(n.request(spec), n.hub_key)) for _ in range(REQUESTS)]
    barrier = threading.Barrier(REQUESTS)

    def run(i: int) -> object:
        barrier.wait()
        try:
            return handle_query(settings=n.settings, signed=tokens[i])
        except NodeError as exc:
            return exc.code

    with ThreadPoolExecutor(REQUESTS) as pool:
        results = list(pool.map(run, range(REQUESTS)))
    answered = [r for r in results if isinstance(r, Signed)]
    assert len(answered) == ADMITTED
    assert results.count("budget_exhausted") == REQUESTS - ADMITTED
    line = budget_report(home=n.home, settings=n.settings)[0]
    assert line.queries == ADMITTED
    assert (line.rho_spent, line.rho_budget, line.rho_remaining) == (
        Decimal("0.37"),
        Decimal("0.37"),
        Decimal(0),
    )
    with transaction(n.settings.db_url) as session:
        charges = session.execute(select(func.count(), exact_sum(BudgetCharge.rho))).one()
        stored = session.execute(
            select(func.count()).where(ReleaseRow.release.is_not(None))
        ).scalar_one()
    assert tuple(charges) == (ADMITTED, Decimal("0.37"))
    assert stored == ADMITTED


def test_crash_between_charge_and_response(tmp_path, db_url) -> None:
    n = make_node(tmp_path / "n", db_url, measures=("count", "mean"))
    request = n.request(n.spec(measure="mean", column="age", group_by=("sex",), rho=0.1))
    token = signing.sign(request, n.hub_key)
    dispose_engines()
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, str(n.home), n.settings.db_url, token],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 3, crashed.stderr
    assert "answered" not in crashed.stdout
    # Restart (a fresh process state): the charge stands and the intent is pending.
    dispose_engines()
    line = budget_report(home=n.home, settings=n.settings)[0]
    assert (line.queries, line.rho_spent) == (1, Decimal("0.1"))
    with transaction(n.settings.db_url) as session:
        row = session.get(ReleaseRow, str(request.query_id))
        assert row is not None
        assert row.release is None
        assert session.execute(select(func.count()).select_from(BudgetCharge)).scalar_one() == 1
    retried = handle_query(settings=n.settings, signed=Signed(jws=token))
    again = handle_query(settings=n.settings, signed=Signed(jws=token))
    assert retried.jws == again.jws
    line = budget_report(home=n.home, settings=n.settings)[0]
    assert (line.queries, line.rho_spent) == (1, Decimal("0.1"))
    with transaction(n.settings.db_url) as session:
        row = session.get(ReleaseRow, str(request.query_id))
        assert row is not None
        assert row.release == retried.jws
