"""The query builder and result pages, over the real app with simulated nodes that publish
their contracts: pick-lists with labels in the reader's language, an agreement change that
never runs under the old agreement, a bad level stopped at the hub next to its field."""

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))

from hub_support import DATASET, Hub, SimNode, count_cell, hub_home, make_hub, make_terms
from test_hub_web_routes import add_people, hub_settings, login

from contracts.v1 import Cell, Column, DatasetContract, Level, PrivacyUnit
from hub.home import HubIdentity

__all__ = ["hub_home", "hub_settings", "make_hub"]  # fixtures, found by name

YES_NO = (
    Level(code="yes", labels={"en": "Yes", "bn": "হ্যাঁ"}),
    Level(code="no", labels={"en": "No", "bn": "না"}),
)
GROUPS = (
    Level(code="dalit", labels={"en": "Dalit", "bn": "দলিত"}),
    Level(code="third_gender_other", labels={"en": "Third gender or other", "bn": "তৃতীয় লিঙ্গ"}),
)


def contract(groups: tuple[Level, ...] = GROUPS) -> DatasetContract:
    return DatasetContract(
        name=DATASET,
        version=1,
        title="LNOB household survey",
        columns=(
            Column(name="respondent", type="string", role="unit_key"),
            Column(name="sex", type="categorical", title="Sex", levels=(Level(code="female"),)),
            Column(name="group", type="categorical", title="Group", levels=groups),
            Column(name="violence_12m", type="categorical", title="Faced violence", levels=YES_NO),
            Column(name="disability", type="categorical", title="Disability", levels=YES_NO),
        ),
        privacy=PrivacyUnit(unit_key="respondent"),
    )


def share_cell(key: tuple[str, ...], share: float) -> Cell:
    return Cell(
        key=key,
        status="ok",
        estimate=share,
        ci95_low=share - 0.05,
        ci95_high=share + 0.05,
        numerator=share * 100,
        denominator=100.0,
        variance=4.0,
        numerator_variance=4.0,
        denominator_variance=8.0,
        covariance=4.0,
    )


@pytest.fixture
def web(make_hub: Callable[..., Hub], hub_home: HubIdentity) -> Hub:
    nodes = [
        SimNode(
            node_id=node_id,
            country=country,
            hub_key=hub_home.public_jwk,
            cells={("dalit",): count_cell(("dalit",), 40.0)},
            contracts=(contract(groups),),
        )
        for node_id, country, groups in (
            ("bd-a", "050", GROUPS),
            ("np-a", "524", GROUPS[:1]),
        )
    ]
    hub = make_hub(nodes)
    for node in nodes:
        hub.register(node)
    for agreement_id in ("lnob-2026", "lnob-health"):
        terms = make_terms(nodes, agreement_id=agreement_id)
        if agreement_id == "lnob-health":
            terms = terms.model_copy(update={"title": "Health access", "measures": ("count",)})
        assert hub.agree(terms)["status"] == "active"
    add_people(hub.settings)
    # The hub fetches the contracts when a query first names the dataset version.
    response = hub.client.post(
        "/v1/queries",
        json={"agreement_id": "lnob-2026", "dataset": DATASET, "measure": "count", "rho": 0.1},
        headers=hub.headers("analyst"),
    )
    assert response.status_code == 201, response.text
    return hub


def speak(hub: Hub, lang: str) -> None:
    """The reader's language, as the language switcher leaves it (a cookie)."""
    hub.client._client.cookies.set("sauti_lang", lang)


def calls(hub: Hub) -> int:
    return sum(n.calls for n in hub.nodes.values())


def spent(hub: Hub, agreement_id: str = "lnob-2026") -> str:
    body = hub.client.get(f"/v1/agreements/{agreement_id}", headers=hub.headers("secretariat"))
    return str(body.json()["rho_spent_at_hub"])


def test_builder_offers_the_contracts_levels_in_the_readers_language(web: Hub) -> None:
    login(web, "amina")
    speak(web, "bn")
    page = web.client.get(
        "/analyst",
        params={
            "agreement_id": "lnob-2026",
            "measure": "share",
            "column": "violence_12m",
            "filter_column_1": "group",
        },
    )
    assert page.status_code == 200
    text = page.text
    assert '<select id="value" name="value"' in text
    assert ">হ্যাঁ</option>" in text  # the level's Bengali label, the code as the value
    assert 'name="filter_levels_1" value="third_gender_other"' in text
    assert "তৃতীয় লিঙ্গ" in text
    # Nodes differ: Nepal's contract lacks a group the Bangladesh one has; said before running.
    assert 'id="differences"' in text
    # Fields shown by measure: a count has no column or answer to choose.
    speak(web, "en")
    count = web.client.get("/analyst", params={"agreement_id": "lnob-2026", "measure": "count"})
    assert 'name="column"' not in count.text
    assert 'name="value"' not in count.text
    assert "± " in count.text  # the predicted interval width for the cost


def test_a_changed_agreement_never_runs_under_the_old_one(web: Hub) -> None:
    token = login(web, "amina")
    before, queries = (
        calls(web),
        len(web.client.get("/v1/queries", headers=web.headers("analyst")).json()),
    )
    spent_before = spent(web), spent(web, "lnob-health")
    page = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-health",  # changed in the form...
            "options_for": f"lnob-2026|1|{DATASET}",  # ...after these options were shown
            "dataset": DATASET,
            "measure": "share",
            "column": "violence_12m",
            "value": "yes",
            "rho": "0.1",
        },
    )
    assert page.status_code == 409
    assert "The agreement changed after the options were shown" in page.text
    # The page now shows the new agreement's options (count only) for a deliberate run.
    assert 'value="lnob-health|1|lnob_household"' in page.text
    assert 'name="column"' not in page.text
    assert calls(web) == before
    assert (spent(web), spent(web, "lnob-health")) == spent_before
    after = web.client.get("/v1/queries", headers=web.headers("analyst")).json()
    assert len(after) == queries


def test_a_bad_level_is_stopped_at_the_hub_next_to_its_field(web: Hub) -> None:
    token = login(web, "amina")
    speak(web, "bn")
    before, spent_before = calls(web), spent(web)
    page = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-2026",
            "options_for": f"lnob-2026|1|{DATASET}",
            "dataset": DATASET,
            "measure": "count",
            "filter_column_1": "group",
            "filter_levels_1": "women",
            "rho": "0.1",
        },
    )
    assert page.status_code == 422
    assert 'id="err-filter_levels_1"' in page.text
    assert "women" in page.text
    assert "dalit, third_gender_other" in page.text
    assert "check these fields" not in page.text
    assert "The query was not run." not in page.text  # said in Bengali
    assert calls(web) == before
    assert spent(web) == spent_before


def test_result_reads_as_people_read_it(web: Hub) -> None:
    token = login(web, "amina")
    for node in web.nodes.values():
        node.cells = {
            ("dalit",): share_cell(("dalit",), 0.239),
            ("third_gender_other",): share_cell(("third_gender_other",), 0.5),
        }
    response = web.client.post(
        "/analyst/queries",
        data={
            "csrf_token": token,
            "agreement_id": "lnob-2026",
            "options_for": f"lnob-2026|1|{DATASET}",
            "dataset": DATASET,
            "measure": "share",
            "column": "violence_12m",
            "value": "yes",
            "group_by_1": "group",
            "rho": "0.1",
        },
    )
    assert response.status_code == 303, response.text
    url = response.headers["location"]
    page = web.client.get(url)
    for _ in range(50):
        if "hx-trigger" not in page.text:
            break
        page = web.client.get(url)
    text = page.text
    assert "Share whose Faced violence is Yes, by Group" in text
    assert "23.9%" in text
    assert "Third gender or other" in text
    assert "third_gender_other</td>" not in text
    # Cells combine Bangladesh and Nepal: SDMX is offered disabled, with the reason.
    assert 'aria-disabled="true"' in text
    assert "add the breakdown by country" in text
    assert "result.sdmx.csv" not in text
    speak(web, "bn")
    bengali = web.client.get(url).text
    speak(web, "en")
    assert "২৩.৯%" in bengali or "২৩,৯%" in bengali
    listing = web.client.get("/analyst").text
    assert re.search(r"Share whose Faced violence is Yes, by Group</a>", listing)
