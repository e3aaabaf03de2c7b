"""An in-process hub with three real demo-like nodes (Nepal 524, Bangladesh 050, Kenya 404).

Each node is the node package's own app over ASGI with a small synthetic frame from the demo
generator; the agreement lets the secretariat's organisation (`sec`) ask the round's queries.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
from hub_support import Hub, make_terms
from real_nodes_support import NodeData, start_real_nodes

from hub.home import HubIdentity
from sauti.demo.codebook import COUNTRIES, make_contract
from sauti.demo.data import make_frame

ROWS = 400
CANARY = "CANARY-7f3e9b2a-assessment"
AGREEMENT = "lnob-2026"
# A small template over the demo columns: three DP indicators (count, share, mean) and two
# self-reported items.
SMALL_TEMPLATE = """
id: lnob-mini
version: 1
title: LNOB mini assessment
indicators:
  - id: HEALTH_ACCESS
    kind: dp
    theme: basic_services
    title: Could get health services when needed
    query:
      {dataset: lnob_household, measure: share, column: health_access, value: "yes", rho: 0.5}
    breakdowns: [[], [sex]]
  - id: RESPONDENTS
    kind: dp
    theme: participation
    title: Respondents heard in the survey
    query: {dataset: lnob_household, measure: count, rho: 0.5}
  - id: SATISFACTION
    kind: dp
    theme: basic_services
    title: Satisfaction with local services (1-5)
    query: {dataset: lnob_household, measure: mean, column: satisfaction, rho: 0.5}
  - id: MOU_SIGNED
    kind: self_reported
    theme: partnership
    title: Is there a signed MoU between the NSO and CSOs?
    answer:
      type: choice
      options: ["yes", in_progress, "no"]
      scores: {"yes": 4, in_progress: 2, "no": 0}
  - id: CGD_SETS_OFFICIAL
    kind: self_reported
    theme: partnership
    title: Number of citizen-generated data sets used in official reporting
    answer: {type: number, minimum: 0, maximum: 200, score_thresholds: {0: 0, 1: 1, 5: 3}}
"""


@dataclass
class Federation:
    hub: Hub
    frames: dict[str, pl.DataFrame]
    countries: dict[str, str]  # node id -> UN M49
    routes: dict[str, httpx.AsyncBaseTransport]  # node host -> its app, for another hub app

    def round_body(self, template_id: str, period: str, **extra: Any) -> dict[str, Any]:
        return {
            "template_id": template_id,
            "period": period,
            "countries": dict.fromkeys(self.countries.values(), AGREEMENT),
            **extra,
        }


def start_federation(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub], **terms: Any
) -> Federation:
    rng = np.random.default_rng(7)
    nodes: dict[str, NodeData] = {}
    for country in COUNTRIES:
        frame = make_frame(country, rows=ROWS, rng=rng)
        # A raw value that must never leave the node (free text is never queryable).
        frame = frame.with_columns(pl.lit(CANARY).alias("notes"))
        nodes[country.node_id] = NodeData(
            country.country, make_contract(country), frame, name=country.organisation
        )
    real = start_real_nodes(tmp_path, hub_home, make_hub, nodes)
    countries = {node_id: node.country for node_id, node in nodes.items()}
    fields: dict[str, Any] = {
        "measures": ("count", "share", "mean"),
        "columns": (
            "health_access",
            "violence_12m",
            "reported_violence",
            "education",
            "satisfaction",
        ),
        "dims": ("group", "sex", "violence_12m", "education", "health_access"),
        "min_cell_size": 5,
        "rho_per_query_max": 1.0,
        "rho_budget": 10.0,
        "analyst_organisations": ("sec", "nso-kenya"),
        "dissemination": "partners",
    }
    fields.update(terms)
    agreement = make_terms(list(countries.items()), agreement_id=AGREEMENT, **fields)
    assert real.agree(agreement)["status"] == "active"
    frames = {node_id: node.frame for node_id, node in nodes.items()}
    return Federation(hub=real.hub, frames=frames, countries=countries, routes=real.routes)
