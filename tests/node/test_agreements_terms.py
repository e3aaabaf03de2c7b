"""Every agreement term, violated one at a time, is refused by the node and charges nothing."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from contracts import signing
from contracts.v1 import Filter, PublicGrid, Release
from node.ledger.service import budget_report
from tests.node.conftest import Node, make_node


def spent(node: Node) -> Decimal:
    return budget_report(home=node.home, settings=node.settings)[0].rho_spent


def refused(node: Node, response, code: str, *, term: str | None = None) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if term is not None:
        assert error["message"].startswith(f"term {term}:"), error["message"]
    assert spent(node) == 0.0


def release(node: Node, response) -> Release:
    assert response.status_code == 200, response.text
    return signing.verify_model(
        response.json()["jws"], signing.load_public_key(node.identity.public_jwk), Release
    )


def test_datasets(node: Node) -> None:
    refused(
        node,
        node.post(node.request(node.spec(dataset="other"))),
        "dataset_not_in_agreement",
        term="datasets",
    )


def test_measures(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, measures=("count",))
    spec = n.spec(measure="share", column="disability", value="yes")
    refused(n, n.post(n.request(spec)), "measure_not_allowed", term="measures")


def test_columns(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, columns=("sex",))
    spec = n.spec(measure="share", column="disability", value="yes")
    refused(n, n.post(n.request(spec)), "column_not_allowed", term="columns")


def test_dims_in_group_by_and_filters(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, dims=("sex",))
    refused(n, n.post(n.request(n.spec(group_by=("district",)))), "dim_not_allowed", term="dims")
    spec = n.spec(filters=(Filter(column="district", levels=("north",)),))
    refused(n, n.post(n.request(spec)), "dim_not_allowed", term="dims")


def test_max_dims(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, max_dims=1)
    spec = n.spec(group_by=("sex", "district"))
    refused(n, n.post(n.request(spec)), "too_many_dims", term="max_dims")


def test_rho_per_query_max(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, rho_per_query_max=0.05)
    refused(n, n.post(n.request(n.spec(rho=0.1))), "cost_over_cap", term="rho_per_query_max")


def test_rho_budget(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, rho_budget=0.15, rho_per_query_max=0.1)
    release(n, n.post(n.request(n.spec(rho=0.1))))
    response = n.post(n.request(n.spec(rho=0.1)))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "budget_exhausted"
    assert response.json()["error"]["message"].startswith("term rho_budget:")
    assert spent(n) == Decimal("0.1")


def test_analyst_organisations(node: Node) -> None:
    other = node.request(analyst_organisation="Some other ministry")
    refused(node, node.post(other), "analyst_org_not_permitted", term="analyst_organisations")
    anonymous = node.request(analyst_organisation=None)
    refused(node, node.post(anonymous), "analyst_org_not_permitted", term="analyst_organisations")


def test_dissemination(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, dissemination="restricted")
    refused(
        n,
        n.post(n.request(dissemination="public")),
        "dissemination_not_allowed",
        term="dissemination",
    )
    refused(
        n,
        n.post(n.request(dissemination="partners")),
        "dissemination_not_allowed",
        term="dissemination",
    )
    # Narrower than or equal to the agreement's level is fine.
    release(n, n.post(n.request(dissemination="restricted")))


def test_valid_until(tmp_path: Path, db_url: str) -> None:
    past = datetime.now(UTC) - timedelta(days=10)
    n = make_node(tmp_path / "n", db_url, valid_from=past, valid_until=past + timedelta(days=1))
    refused(n, n.post(n.request()), "agreement_expired", term="valid_until")


def test_valid_from(tmp_path: Path, db_url: str) -> None:
    soon = datetime.now(UTC) + timedelta(days=2)
    n = make_node(tmp_path / "n", db_url, valid_from=soon, valid_until=soon + timedelta(days=9))
    refused(n, n.post(n.request()), "agreement_not_yet_valid", term="valid_from")


def test_min_cell_size_withholds_small_cells(tmp_path: Path, db_url: str) -> None:
    # Only per-node suppression applies the minimum at the node; 300 rows, 3 sexes.
    n = make_node(tmp_path / "n", db_url, min_cell_size=10_000)
    cells = release(n, n.post(n.request(n.spec(group_by=("sex",))))).cells
    assert {c.status for c in cells} == {"suppressed"}
    assert all(c.estimate is None for c in cells)


def test_max_ci_relative_width_withholds_imprecise_cells(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, max_ci_relative_width=1e-6)
    cells = release(n, n.post(n.request(n.spec(group_by=("sex",))))).cells
    assert {c.status for c in cells} == {"suppressed"}


def test_suppression_combined_leaves_cells_to_the_hub(tmp_path: Path, db_url: str) -> None:
    n = make_node(tmp_path / "n", db_url, min_cell_size=10_000, suppression="combined")
    cells = release(n, n.post(n.request(n.spec(group_by=("sex",))))).cells
    assert {c.status for c in cells} == {"ok"}


def test_parties_a_request_for_another_node(node: Node) -> None:
    response = node.post(node.request(node_id="someone-else"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wrong_node"
    assert spent(node) == 0.0


def test_forged_digest_hub_altered_terms_after_signing(node: Node) -> None:
    # The hub (or anyone with its key) rewrites the terms and signs a request under them.
    altered = node.terms.model_copy(update={"rho_budget": 500.0, "rho_per_query_max": 5.0})
    forged = node.request(
        agreement_digest=signing.digest(altered), rho=4.0, spec=node.spec(rho=4.0)
    )
    refused(node, node.post(forged), "agreement_unknown")
    unsigned_version = node.request(agreement_version=2)
    refused(node, node.post(unsigned_version), "agreement_unknown")


def test_grids_public_refuses_an_analyst_grid_and_charges_nothing(
    tmp_path: Path, db_url: str
) -> None:
    listed = PublicGrid(column="age", kind="candidates", values=(18, 30, 45, 60))
    n = make_node(
        tmp_path / "n",
        db_url,
        measures=("count", "quantile", "histogram"),
        columns=("age",),
        grids="public",
        public_grids=(listed,),
    )
    fitted = n.spec(measure="quantile", column="age", candidates=(40, 41, 42))
    refused(n, n.post(n.request(fitted)), "grid_not_allowed", term="grids")
    edges = n.spec(measure="histogram", column="age", edges=(0, 41, 120))
    refused(n, n.post(n.request(edges)), "grid_not_allowed", term="grids")
    # The contract's own default grid and the agreement's listed grid are answered.
    default = release(n, n.post(n.request(n.spec(measure="quantile", column="age"))))
    assert default.grid is not None
    assert len(default.grid) == 101
    assert (default.grid[0], default.grid[-1]) == (0, 120)
    listed_spec = n.spec(measure="quantile", column="age", candidates=listed.values)
    assert release(n, n.post(n.request(listed_spec))).grid == listed.values
