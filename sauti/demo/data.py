"""Synthetic LNOB household-survey records for the three demo CSOs (their codebooks: codebook.py).

Everything here is invented (names, notes, numbers) and generated from a fixed seed, so a
demo run is reproducible. Rates are loosely shaped on published LNOB findings (higher
violence exposure and lower reporting for sex workers and third-gender people, lower
health access for Dalit and disability groups) but are not data about anyone.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl

from contracts.v1 import DatasetContract
from sauti.demo import DEFAULT_ROWS
from sauti.demo.codebook import (
    AGE_BANDS,
    CONTRACT_VERSION,
    COUNTRIES,
    DATASET,
    GROUPS,
    Country,
    make_contract,
)

# The codebook's names stay importable from here too (the records and their contracts).
__all__ = [
    "CONTRACT_VERSION",
    "COUNTRIES",
    "DATASET",
    "DEFAULT_ROWS",
    "DEFAULT_SEED",
    "GROUPS",
    "DemoNode",
    "demo_nodes",
    "make_contract",
    "make_frame",
]
DEFAULT_SEED = 20_261_127

# Per group: P(violence yes), P(reported | violence yes), P(health access), P(female).
GROUP_RATES: dict[str, tuple[float, float, float, float]] = {
    "dalit": (0.24, 0.22, 0.56, 0.52),
    "disability": (0.22, 0.18, 0.50, 0.53),
    "sex_worker": (0.46, 0.12, 0.60, 0.82),
    "third_gender": (0.52, 0.10, 0.48, 0.05),
    "indigenous": (0.19, 0.25, 0.62, 0.51),
    "religious_minority": (0.17, 0.28, 0.70, 0.50),
    "none": (0.10, 0.38, 0.82, 0.51),
}
NOTES = (
    "Clinic is far; transport costs too much.",
    "Was asked for a bribe at the health post.",
    "Community health volunteer visits sometimes.",
    "Would like information in the local language.",
    "Afraid to report to police.",
    "Lost daily income during the lean season.",
    "Ramp missing at the ward office.",
    "No ID card, so could not register for the allowance.",
)


@dataclass(frozen=True)
class DemoNode:
    """One demo node's identity, its published contract and its raw (synthetic) records."""

    node_id: str
    organisation: str
    country: str
    contract: DatasetContract
    frame: pl.DataFrame


def _pick(rng: np.random.Generator, codes: list[str], p: list[float], size: int) -> np.ndarray:
    weights = np.asarray(p, dtype=float)
    return rng.choice(np.asarray(codes, dtype=object), size=size, p=weights / weights.sum())


def _strings(values: np.ndarray) -> pl.Series:
    return pl.Series(values.tolist(), dtype=pl.String)


def make_frame(country: Country, *, rows: int, rng: np.random.Generator) -> pl.DataFrame:
    """`rows` synthetic respondents of one country, one row each."""
    groups = _pick(rng, list(country.group_mix), list(country.group_mix.values()), rows)
    rates = np.array([GROUP_RATES[g] for g in groups])
    p_violence, p_report, p_health, p_female = rates.T

    # Third-gender respondents mostly identify as third gender; others rarely do.
    u = rng.random(rows)
    p_other = np.where(groups == "third_gender", 0.85, np.where(groups == "sex_worker", 0.1, 0.005))
    sex = np.where(
        u < p_other, "third_gender_other", np.where(u < p_other + p_female, "female", "male")
    )

    age_band = _pick(rng, list(AGE_BANDS), [0.18, 0.27, 0.29, 0.17, 0.09], rows)
    district = _pick(rng, list(country.districts), [1.0] * len(country.districts), rows)

    # Marginalised groups and women have less schooling on average.
    disadvantage = np.where(groups == "none", 0.0, 0.6) + np.where(sex == "female", 0.3, 0.0)
    schooling = rng.normal(1.6 - disadvantage, 0.9)
    education = np.array(["none", "primary", "secondary", "higher"], dtype=object)[
        np.clip(np.round(schooling), 0, 3).astype(int)
    ]

    u = rng.random(rows)
    declined = 0.05
    violence = np.where(u < declined, "declined", np.where(u < declined + p_violence, "yes", "no"))
    reported = np.where(
        violence == "yes",
        np.where(rng.random(rows) < p_report, "yes", "no"),
        "not_applicable",
    )

    odds = p_health / (1 - p_health) * country.health_factor
    health = np.where(rng.random(rows) < odds / (1 + odds), "yes", "no").astype(object)
    health[rng.random(rows) < 0.02] = None  # a few skipped answers

    base = np.where(health == "yes", 3.4, 2.3) - 0.3 * (violence == "yes")
    satisfaction = np.clip(np.round(rng.normal(base, 0.9)), 1, 5).astype(np.int64)

    first = _pick(rng, list(country.first_names), [1.0] * len(country.first_names), rows)
    last = _pick(rng, list(country.last_names), [1.0] * len(country.last_names), rows)
    notes = _pick(rng, list(NOTES), [1.0] * len(NOTES), rows).astype(object)
    notes[rng.random(rows) < 0.7] = None

    # Respondent ids are unique per node and never overlap between nodes.
    first_id = int(country.country) * 1_000_000 + 1
    return pl.DataFrame(
        {
            "respondent_id": pl.Series(np.arange(first_id, first_id + rows), dtype=pl.Int64),
            "respondent_name": pl.Series(
                [f"{a} {b}" for a, b in zip(first, last, strict=True)], dtype=pl.String
            ),
            "group": _strings(groups),
            "sex": _strings(sex),
            "age_band": _strings(age_band),
            "district": _strings(district),
            "education": _strings(education),
            "violence_12m": _strings(violence),
            "reported_violence": _strings(reported),
            "health_access": _strings(health),
            "satisfaction": pl.Series(satisfaction, dtype=pl.Int64),
            "notes": _strings(notes),
        }
    )


def demo_nodes(*, rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> list[DemoNode]:
    """The three demo nodes with `rows` respondents each, identical for the same seed."""
    rng = np.random.default_rng(seed)
    return [
        DemoNode(
            node_id=country.node_id,
            organisation=country.organisation,
            country=country.country,
            contract=make_contract(country),
            frame=make_frame(country, rows=rows, rng=rng),
        )
        for country in COUNTRIES
    ]
