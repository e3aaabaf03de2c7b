"""Many threads racing on one agreement never overspend; twins of one query get one release."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from contracts import signing
from contracts.v1 import Signed
from node.exceptions import NodeError
from node.ledger.service import budget_report
from node.queries.service import handle_query
from tests.node.conftest import make_node

THREADS = 12


def _race(fn, n: int) -> list[object]:
    barrier = threading.Barrier(n)

    def run(i: int) -> object:
        barrier.wait()
        try:
            return fn(i)
        except NodeError as exc:
            return exc.code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_racing_queries_never_overspend(tmp_path, db_url) -> None:
    n = make_node(tmp_path / "n", db_url, rho_budget=0.5, rho_per_query_max=0.1)
    tokens = [Signed(jws=signing.sign(n.request(), n.hub_key)) for _ in range(THREADS)]
    results = _race(lambda i: handle_query(settings=n.settings, signed=tokens[i]), THREADS)
    answered = [r for r in results if isinstance(r, Signed)]
    assert len(answered) == 5
    assert results.count("budget_exhausted") == THREADS - 5
    line = budget_report(home=n.home, settings=n.settings)[0]
    assert line.rho_spent == Decimal("0.5")
    assert line.queries == 5


def test_racing_twins_get_one_release_charged_once(tmp_path, db_url) -> None:
    n = make_node(tmp_path / "n", db_url)
    token = Signed(jws=signing.sign(n.request(), n.hub_key))
    results = _race(lambda _i: handle_query(settings=n.settings, signed=token), 8)
    assert all(isinstance(r, Signed) for r in results)
    assert len({r.jws for r in results}) == 1  # type: ignore[union-attr]
    assert budget_report(home=n.home, settings=n.settings)[0].queries == 1
