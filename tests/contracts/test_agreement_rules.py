"""The agreement text says what the rules do; the grids term; old digests still verify."""

import math
from datetime import UTC, date, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from contracts import signing
from contracts.agreement_rules import (
    grid_refusal,
    one_person_release_chance,
    plain_language,
    summary_text,
    validity_at,
    validity_days,
)
from contracts.v1 import AgreementTerms, DatasetRef, Party, PublicGrid, QuerySpec


def terms(**overrides: object) -> AgreementTerms:
    fields: dict[str, object] = {
        "agreement_id": "lnob-2026",
        "version": 1,
        "title": "LNOB data sharing",
        "purpose": "SDG monitoring",
        "hub_id": "hub",
        "parties": (
            Party(organisation="Secretariat", role="secretariat"),
            Party(organisation="CSO", role="cso", country="524", node_id="np"),
        ),
        "datasets": (DatasetRef(name="household", contract_version=1),),
        "measures": ("count", "quantile", "histogram"),
        "columns": ("income",),
        "dims": ("sex",),
        "rho_per_query_max": 0.01,
        "rho_budget": 1.0,
        "analyst_organisations": ("NSO",),
        "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
        "valid_until": datetime(2027, 1, 1, tzinfo=UTC),
    }
    fields.update(overrides)
    return AgreementTerms(**fields)  # type: ignore[arg-type]


def small_groups(t: AgreementTerms) -> str:
    return " ".join(next(s for s in plain_language(t) if s.heading == "Small groups").lines)


def test_a_zero_minimum_cell_size_is_stated_as_no_minimum() -> None:
    text = small_groups(terms(min_cell_size=0))
    assert "about 0" not in text
    assert "No minimum cell size is set" in text
    assert "even one" in text
    assert "about 0" not in summary_text(terms(min_cell_size=0))


def test_the_minimum_is_said_to_be_judged_on_a_noisy_count() -> None:
    text = small_groups(terms(min_cell_size=10))
    assert "A cell is withheld when its noisy count is below 10" in text
    assert "fewer than about" not in text
    # sd 1 / sqrt(2 x 0.01) = 7.07: a one-person cell passes about 11% of the time.
    assert "a cell of a single respondent is still released in about 11% of questions" in text
    rare = small_groups(terms(min_cell_size=10, rho_per_query_max=0.1))
    assert "fewer than 1 in 10,000 questions" in rare


@pytest.mark.parametrize(("rho", "size"), [(0.01, 10), (0.1, 5), (0.001, 10), (0.05, 3)])
def test_the_one_person_chance_matches_the_discrete_gaussian(rho: float, size: int) -> None:
    sigma = 1 / math.sqrt(2 * rho)
    ks = np.arange(-math.ceil(40 * sigma), math.ceil(40 * sigma) + 1)
    pmf = np.exp(-(ks * ks) / (2 * sigma * sigma))
    exact = pmf[1 + ks >= size].sum() / pmf.sum()
    assert one_person_release_chance(rho=rho, min_cell_size=size) == pytest.approx(
        exact, rel=0.05, abs=1e-6
    )


def spec(**fields: object) -> QuerySpec:
    base: dict[str, object] = {
        "agreement_id": "lnob-2026",
        "dataset": "household",
        "measure": "quantile",
        "column": "income",
        "rho": 0.01,
    }
    base.update(fields)
    return QuerySpec(**base)  # type: ignore[arg-type]


def test_public_grids_allow_only_defaults_and_listed_grids() -> None:
    open_terms = terms()
    assert grid_refusal(open_terms, spec(candidates=(1, 2, 3))) is None
    listed = PublicGrid(column="income", kind="candidates", values=(0, 1000, 5000))
    strict = terms(grids="public", public_grids=(listed,))
    assert grid_refusal(strict, spec()) is None
    assert grid_refusal(strict, spec(candidates=(0, 1000, 5000))) is None
    refusal = grid_refusal(strict, spec(candidates=(0, 1000, 5001)))
    assert refusal is not None
    assert refusal.startswith("term grids:")
    histogram = spec(measure="histogram", edges=(0, 1000, 5000))
    assert grid_refusal(strict, histogram) is not None  # listed as candidates, not edges
    assert grid_refusal(strict, spec(measure="histogram")) is None
    other_column = terms(
        grids="public", public_grids=(listed.model_copy(update={"column": "age"}),)
    )
    assert grid_refusal(other_column, spec(candidates=(0, 1000, 5000))) is not None
    text = " ".join(next(s for s in plain_language(strict) if s.heading == "Grids").lines)
    assert "income candidates 0, 1000, 5000" in text


def test_grid_terms_validate() -> None:
    with pytest.raises(ValidationError):
        PublicGrid(column="income", kind="edges", values=(5, 1))
    with pytest.raises(ValidationError):
        PublicGrid(column="income", kind="edges", values=(5,))
    with pytest.raises(ValidationError):
        terms(public_grids=(PublicGrid(column="income", kind="edges", values=(0, 1)),))


def test_defaults_stay_out_of_the_canonical_json_so_old_digests_verify() -> None:
    t = terms()
    body = t.model_dump(mode="json")
    assert "grids" not in body
    assert "public_grids" not in body
    assert signing.digest(AgreementTerms.model_validate(body)) == signing.digest(t)
    strict = terms(
        grids="public",
        public_grids=(PublicGrid(column="income", kind="candidates", values=(1, 2)),),
    )
    assert strict.model_dump(mode="json")["grids"] == "public"
    assert signing.digest(strict) != signing.digest(t)


def test_validity_at_ends_where_the_signed_days_end() -> None:
    """`valid_until` is the first instant out of force; the last day named is the day before."""
    t = terms(
        valid_from=datetime(2026, 1, 1, tzinfo=UTC), valid_until=datetime(2027, 1, 1, tzinfo=UTC)
    )
    first, last = validity_days(t)
    assert (first, last) == (date(2026, 1, 1), date(2026, 12, 31))
    assert validity_at(t, datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == "not_yet_valid"
    assert validity_at(t, datetime(2026, 1, 1, tzinfo=UTC)) == "in_force"
    assert validity_at(t, datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == "in_force"
    assert validity_at(t, datetime(2027, 1, 1, tzinfo=UTC)) == "expired"
    # A naive moment is UTC, as everywhere in the agreement rules.
    assert validity_at(t, datetime(2027, 1, 1)) == "expired"
