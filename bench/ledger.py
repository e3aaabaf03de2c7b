"""Cost of the exact budget check on SQLite, side by side with summing the same costs as doubles.

The ledger holds rho as exact decimals (text on SQLite, added by a Python aggregate), so a
budget period that sums its charges pays per charge. For N charges already in the period,
each row prints the median milliseconds of:

- `exact quarter`: what a reservation under a quarterly budget runs (`spent_in_period`);
- `double sum`: SQLite's own SUM over the same rows read as doubles (what the ledger did);
- `exact validity`: a validity-period budget's check (the locked running total).

It ends with `target NAME: VALUE (limit LIMIT) PASS|FAIL` lines.
"""

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, text

from contracts import budget as exact
from contracts.v1 import AgreementTerms, DatasetRef, Party
from node.db import dispose_engines, engine_for, transaction
from node.ledger import service as ledger
from node.ledger.models import BudgetCharge, BudgetRow

SIZES = (1_000, 10_000, 100_000)
ROUNDS = 15
COST = "0.01"
# A quarterly budget's check at 10,000 charges (a budget of 1 spent at rho 1e-4), and a
# validity budget's at 100,000: what a reservation may add while it holds the budget lock.
QUARTER_LIMIT_MS = 50.0
VALIDITY_LIMIT_MS = 10.0


def _terms(period: str) -> AgreementTerms:
    now = datetime.now(UTC)
    return AgreementTerms(
        agreement_id="bench",
        version=1,
        title="bench",
        purpose="bench",
        hub_id="hub",
        parties=(
            Party(organisation="Secretariat", role="secretariat"),
            Party(organisation="CSO", role="cso", country="524", node_id="node"),
        ),
        datasets=(DatasetRef(name="survey", contract_version=1),),
        measures=("count",),
        columns=(),
        dims=(),
        max_dims=1,
        min_cell_size=0,
        rho_per_query_max=1.0,
        rho_budget=1e9,
        budget_period=period,
        analyst_organisations=("nso",),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )


def _fill(url: str, charges: int, now: datetime) -> None:
    with transaction(url) as session:
        session.add(
            BudgetRow(
                agreement_id="bench", rho_spent=exact.total([COST] * charges), queries=charges
            )
        )
        row = {
            "agreement_id": "bench",
            "version": 1,
            "rho": COST,
            "charged_at": now,
            "period": "bench",
            "dataset": "survey",
            "measure": "count",
            "group_by": "[]",
        }
        for start in range(0, charges, 20_000):
            batch = [
                {**row, "query_id": str(uuid.uuid4())} for _ in range(min(20_000, charges - start))
            ]
            session.execute(insert(BudgetCharge), batch)


def _median_ms(run: Callable[[], None]) -> float:
    timings = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def measure(scratch: Path, charges: int) -> tuple[float, float, float]:
    url = f"sqlite:///{scratch}/ledger-{charges}.sqlite"
    engine: Engine = engine_for(url)
    now = datetime.now(UTC)
    _fill(url, charges, now)
    quarter, validity = _terms("quarter"), _terms("validity")
    expected = exact.total([COST] * charges)

    def exact_quarter() -> None:
        with transaction(url) as session:
            spent, _ = ledger.spent_in_period(session, terms=quarter, now=now, lifetime=expected)
            assert spent == expected

    def double_sum() -> None:
        with engine.connect() as conn:
            conn.execute(
                select(func.sum(text("CAST(rho AS REAL)"))).where(
                    BudgetCharge.agreement_id == "bench",
                    BudgetCharge.charged_at >= now - timedelta(days=1),
                )
            ).scalar_one()

    def exact_validity() -> None:
        with transaction(url) as session:
            ledger.check_covers(session, terms=validity, rho=0.01, now=now)

    return _median_ms(exact_quarter), _median_ms(double_sum), _median_ms(exact_validity)


def main() -> int:
    print(f"{'charges':>8} {'exact quarter':>14} {'double sum':>11} {'exact validity':>15}  (ms)")
    results: dict[int, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for charges in SIZES:
            results[charges] = measure(Path(tmp), charges)
            quarter_ms, double_ms, validity_ms = results[charges]
            print(f"{charges:>8,} {quarter_ms:>14.2f} {double_ms:>11.2f} {validity_ms:>15.2f}")
        dispose_engines()
    quarter_ms = results[10_000][0]
    validity_ms = results[100_000][2]
    ok = True
    for name, value, limit in (
        ("ledger-quarter-check-10k-ms", quarter_ms, QUARTER_LIMIT_MS),
        ("ledger-validity-check-100k-ms", validity_ms, VALIDITY_LIMIT_MS),
    ):
        passed = value <= limit
        ok &= passed
        print(f"target {name}: {value:.2f} (limit {limit:g}) {'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
