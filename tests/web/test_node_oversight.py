"""What a steward signs and oversees on the node's pages (issue #23, items 2 to 4).

The terms name every term that binds the node, the aggregation term included, columns by
their labels, validity days inclusively, and the budget with its anchor (the same sentence
the MoU document prints). The requests log says, for accepted and refused requests alike,
what was asked, by whom, at what cost and why it was refused, and filters by agreement,
organisation and outcome.
"""

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.agreement_rules import plain_language
from contracts.budget_anchor import anchor_text
from contracts.v1 import Filter
from node.db import dispose_engines
from tests.node.conftest import Node, contract, hub_signed, terms
from tests.web.node_web_support import WebClient, steward_node, web_client

LABELLED = contract().model_copy(
    update={
        "columns": tuple(
            c.model_copy(update={"title": "Has a disability"}) if c.name == "disability" else c
            for c in contract().columns
        )
    }
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Node, WebClient]]:
    node = steward_node(
        tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite", dataset_contract=LABELLED
    )
    with web_client(node.client.app) as client:
        assert client.login().status_code == 303
        yield node, client
    dispose_engines()


def _review(node: Node, client: WebClient, **overrides: object) -> str:
    proposed = hub_signed(
        terms(node.identity.node_id, agreement_id="mou-2", **overrides), node.hub_key
    )
    page = client.post(
        "/steward/agreements/review",
        data={
            "csrf_token": client.csrf("/steward/agreements"),
            "document": proposed.model_dump_json(),
        },
    )
    assert page.status_code == 200, page.text
    return html.unescape(page.text)


def test_the_terms_name_everything_that_binds_the_node(site: tuple[Node, WebClient]) -> None:
    node, client = site
    text = _review(
        node,
        client,
        aggregation="secure",
        collusion=0,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=datetime(2028, 1, 1, tzinfo=UTC),
    )
    assert "Combining nodes" in text
    assert "this node adds the noise for k − 0 nodes" in text
    assert "as long as no node shares what it knows with the hub" in text
    assert "node(s)" not in text
    # Columns by their labels, with the name beside.
    assert "Has a disability (disability)" in text
    # The window ends at 1 January 2028, 00:00: the last day in force is 31 December 2027.
    assert "In force from January 1, 2026 through December 31, 2027, both days included" in text
    # The budget's anchor, word for word what the MoU document prints.
    assert anchor_text(5.0) in text
    mou = " ".join(line for section in plain_language(node.terms) for line in section.lines)
    assert anchor_text(5.0) in mou

    several = _review(node, client, aggregation="secure", collusion=2)
    assert "even if up to 2 other nodes share what they know with the hub" in several
    one = _review(node, client, aggregation="secure", collusion=1)
    assert "even if 1 other node shares what it knows with the hub" in one
    plain = _review(node, client)
    assert "Each node adds the full noise to its own answer" in plain


def test_the_plain_language_terms_say_the_same(site: tuple[Node, WebClient]) -> None:
    node, _client = site
    secure = terms(node.identity.node_id, aggregation="secure", collusion=1)
    lines = " ".join(
        line for s in plain_language(secure, labels={"age": "Age"}) for line in s.lines
    )
    assert "even if 1 other node shares what it knows with the hub" in lines
    assert "Age (age)" in lines
    assert "node(s)" not in lines


def test_requests_log_shows_what_was_asked_by_whom_at_what_cost(
    site: tuple[Node, WebClient],
) -> None:
    node, client = site
    accepted = node.spec(
        measure="share",
        column="disability",
        value="yes",
        group_by=("sex",),
        filters=(Filter(column="district", levels=("north",)),),
        rho=0.25,
    )
    assert node.post(node.request(accepted)).status_code == 200
    too_costly = node.spec(measure="count", group_by=("district",), rho=2.0)
    assert node.post(node.request(too_costly)).status_code >= 400
    other_org = node.request(node.spec(group_by=("group",)), analyst_organisation="Ministry X")
    assert node.post(other_org).status_code >= 400

    page = html.unescape(client.get("/steward/requests").text)
    assert "shares (proportions) of respondents of Has a disability (disability)" in page
    assert "broken down by sex" in page
    assert "only some categories of district" in page
    assert "north" not in page  # the level chosen is never logged, nor shown
    assert "Refused: the question costs more than the per-question cap" in page
    assert "Refused: the analyst's organisation may not ask" in page
    assert "broken down by district" in page  # a refused request says what it asked too
    assert "asked 2.000, nothing charged" in page
    assert "0.250" in page
    assert "Ministry X" in page

    refused = html.unescape(client.get("/steward/requests?outcome=refused").text)
    assert "broken down by district" in refused
    assert "Has a disability" not in refused
    accepted_only = html.unescape(client.get("/steward/requests?outcome=accepted").text)
    assert "Has a disability" in accepted_only
    assert "broken down by district" not in accepted_only
    ministry = html.unescape(client.get("/steward/requests?organisation=Ministry+X").text)
    assert "broken down by group" in ministry
    assert "broken down by sex" not in ministry
    other = html.unescape(client.get("/steward/requests?agreement_id=mou-9").text)
    assert "No requests yet." in other
    bad = client.get("/steward/requests?outcome=maybe")
    assert bad.status_code == 422
