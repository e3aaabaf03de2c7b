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

from contracts.v1 import SignedAgreement
from hub.home import HubIdentity
from node import home as node_home
from node.agreements import service as node_agreements
from node.app import create_app as create_node_app
from node.datasets import service as node_datasets
from node.settings import NodeSettings
from sauti.demo.data import COUNTRIES, make_contract, make_frame

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
    frames: dict[str, pl.DataFrame] = {}
    countries: dict[str, str] = {}
    routes: dict[str, httpx.AsyncBaseTransport] = {}
    homes: dict[str, Path] = {}
    for country in COUNTRIES:
        frame = make_frame(country, rows=ROWS, rng=rng)
        # A raw value that must never leave the node (free text is never queryable).
        frame = frame.with_columns(pl.lit(CANARY).alias("notes"))
        home = tmp_path / country.node_id
        node_home.init_home(
            home, name=country.organisation, country=country.country, node_id=country.node_id
        )
        node_home.pin_hub(home, hub_id=hub_home.hub_id, public_jwk=hub_home.public_jwk)
        node_datasets.import_frame(home=home, contract=make_contract(country), frame=frame)
        frames[country.node_id] = frame
        countries[country.node_id] = country.country
        homes[country.node_id] = home
        routes[f"{country.node_id}.nodes.test"] = httpx.ASGITransport(
            app=create_node_app(NodeSettings(home=home))
        )
    hub = make_hub([], extra=routes)
    for node_id, home in homes.items():
        identity = node_home.load_identity(home)
        response = hub.client.post(
            "/v1/nodes",
            json={
                "node_id": identity.node_id,
                "name": identity.name,
                "country": identity.country,
                "url": f"http://{node_id}.nodes.test",
                "public_jwk": identity.public_jwk,
            },
            headers=hub.headers("secretariat"),
        )
        assert response.status_code == 201, response.text
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
    created = hub.client.post(
        "/v1/agreements", json=agreement.model_dump(mode="json"), headers=hub.headers("secretariat")
    )
    assert created.status_code == 201, created.text
    signed = SignedAgreement.model_validate(created.json()["agreement"])
    for home in homes.values():
        signature = node_agreements.sign(
            home=home, agreement=signed, settings=NodeSettings(home=home)
        )
        response = hub.client.post(
            f"/v1/agreements/{AGREEMENT}/signatures",
            json=signature.model_dump(mode="json"),
            headers=hub.headers("secretariat"),
        )
        assert response.status_code == 201, response.text
    assert response.json()["status"] == "active"
    return Federation(hub=hub, frames=frames, countries=countries, routes=routes)
