"""Property tests of the node's query route (Hypothesis), on SQLite and PostgreSQL.

Whatever a hub-signed request asks (any measure, column, value, dims, filters, text with
control characters, costs), the node never answers with a server error, and its budget
moves only with a release: a refusal charges nothing, a release charges its rho once.
Unsigned junk is refused without a server error too.
"""

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import budget as exact
from contracts.v1 import QuerySpec
from node.ledger import service as ledger
from tests.node.conftest import Node

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COLUMNS = ("sex", "district", "group", "disability", "age", "respondent", "phone", "comment")
LEVELS = ("female", "male", "other", "north", "south", "dalit", "yes", "no")
# Any text, control characters, NUL and lone surrogates included.
TEXT = st.text(st.characters(codec=None), max_size=12)
# Mostly names and levels the contract has (so requests get far), sometimes anything.
NAMES = st.one_of([st.sampled_from(COLUMNS)] * 6 + [TEXT])
VALUES = st.one_of([st.sampled_from(LEVELS)] * 6 + [TEXT])
# The agreement allows count and share; the others must be refused as cleanly.
MEASURES = st.one_of(
    [st.sampled_from(("count", "share"))] * 3
    + [st.sampled_from(("sum", "mean", "quantile", "histogram"))]
)
# Any positive rho the wire allows, tiny ones included (1e-300 once crashed a node after
# its charge), and the edges of the floor.
RHOS = st.floats(min_value=0, max_value=10, exclude_min=True) | st.sampled_from(
    [1e-300, 1e-13, 9.99e-5, 1e-4]
)


@st.composite
def specs(draw: st.DrawFn, agreement_id: str) -> dict[str, Any]:
    measure = draw(MEASURES)
    return {
        "agreement_id": draw(st.one_of([st.just(agreement_id)] * 6 + [TEXT])),
        "dataset": draw(st.one_of([st.just("survey")] * 6 + [TEXT])),
        "measure": measure,
        "column": None if measure == "count" else draw(NAMES),
        "value": draw(VALUES) if measure == "share" else None,
        "group_by": draw(st.lists(NAMES, max_size=3, unique=True)),
        "filters": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"column": NAMES, "levels": st.lists(VALUES, min_size=1, max_size=3)}
                ),
                max_size=1,
            )
        ),
        "rho": draw(RHOS),
    }


def _spent(node: Node) -> Decimal:
    lines = ledger.budget_report(home=node.home, settings=node.settings)
    return exact.add(*(line.rho_spent for line in lines))


@given(data=st.data())
@PROPERTY
def test_no_signed_request_fails_the_node_or_charges_without_a_release(
    node: Node, data: st.DataObject
) -> None:
    raw = data.draw(specs(node.terms.agreement_id))
    try:
        spec = QuerySpec.model_validate(raw)
    except ValidationError:
        return  # the hub's own model refuses it: it is never signed
    before = _spent(node)
    answer = node.post(node.request(spec, rho=spec.rho))
    after = _spent(node)
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200:
        assert after == exact.add(before, exact.rho(spec.rho))
    else:
        assert answer.json()["error"]["code"]
        assert after == before, answer.text


@given(
    measure=st.sampled_from(("count", "share")),
    column=st.sampled_from(("disability", "sex")),
    value=st.sampled_from(("yes", "no", "female")),
    dims=st.lists(
        st.sampled_from(("sex", "district", "group", "disability")), max_size=3, unique=True
    ),
    rho=RHOS,
    repeat=st.booleans(),
)
@PROPERTY
def test_answerable_questions_charge_their_release_once(
    node: Node, measure: str, column: str, value: str, dims: list[str], rho: float, repeat: bool
) -> None:
    """Questions the terms allow, at any cost: answered and charged once, or refused (over the
    cap, or the budget spent) and charged nothing; a retry of the same request is free."""
    share = measure == "share"
    spec = node.spec(
        measure=measure,
        column=column if share else None,
        value=value if share else None,
        group_by=tuple(dims),
        rho=rho,
    )
    request = node.request(spec, rho=rho)
    before = _spent(node)
    answer = node.post(request)
    after = _spent(node)
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200:
        assert after == exact.add(before, exact.rho(rho))
    else:
        assert answer.json()["error"]["code"] in {
            "cost_over_cap",
            "budget_exhausted",
            "rho_below_floor",
            "unknown_level",
            "column_not_allowed",
        }, answer.text
        assert after == before
    if repeat:
        again = node.post(request)
        assert again.status_code == answer.status_code
        assert _spent(node) == after


@given(body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@PROPERTY
def test_unsigned_junk_is_refused_without_a_server_error(node: Node, body: bytes) -> None:
    before = _spent(node)
    answer = node.client.post(
        "/v1/queries", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert _spent(node) == before


@given(
    login=st.fixed_dictionaries(
        {"username": TEXT, "password": TEXT}, optional={"totp": st.none() | TEXT}
    )
)
@PROPERTY
def test_no_login_body_fails_the_node(node: Node, login: dict[str, Any]) -> None:
    answer = node.client.post("/v1/steward/login", json=login)
    assert answer.status_code in (401, 422), answer.text
