"""Property tests of the hub's routes (Hypothesis), on SQLite and PostgreSQL.

Whatever an analyst, a login form or an administrator sends (any text, control characters,
NUL and lone surrogates included), the hub never answers with a server error, and a query
it refuses is never sent to a node: nothing is asked of any node's budget without a release.
"""

from typing import Any

from hub_support import Hub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TEXT = st.text(st.characters(codec=None), max_size=12)
COLUMNS = ("violence_12m", "disability", "group", "sex", "age_band", "district", "country")
NAMES = st.one_of([st.sampled_from(COLUMNS)] * 4 + [TEXT])
VALUES = st.one_of([st.sampled_from(("yes", "no", "female"))] * 4 + [TEXT])
# Any rho, tiny ones below the agreement's floor included, and values the wire refuses.
RHOS = st.floats(min_value=0, max_value=1.0) | st.sampled_from([1e-300, 1e-13, -1.0, 11.0])


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    measure = draw(st.sampled_from(("count", "share", "mean", "median")) | TEXT)
    return {
        "agreement_id": draw(st.one_of([st.just("lnob-2026")] * 4 + [TEXT])),
        "dataset": draw(st.one_of([st.just("lnob_household")] * 4 + [TEXT])),
        "measure": measure,
        "column": draw(st.none() | NAMES),
        "value": draw(VALUES) if measure == "share" else None,
        "group_by": draw(st.lists(NAMES, max_size=3)),
        "filters": draw(
            st.lists(
                st.fixed_dictionaries({"column": NAMES, "levels": st.lists(VALUES, max_size=2)}),
                max_size=1,
            )
        ),
        "rho": draw(RHOS),
    }


def _asked(hub: Hub) -> int:
    return sum(len(node.requests) for node in hub.nodes.values())


@given(spec=specs())
@PROPERTY
def test_no_query_fails_the_hub_or_reaches_a_node_when_refused(
    federation: Hub, spec: dict[str, Any]
) -> None:
    before = _asked(federation)
    answer = federation.client.post("/v1/queries", json=spec, headers=federation.headers("analyst"))
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.json()["error"]["code"]
        assert _asked(federation) == before, answer.text


@given(
    login=st.fixed_dictionaries({"username": TEXT, "password": TEXT}, optional={"totp": TEXT}),
    as_form=st.booleans(),
)
@PROPERTY
def test_no_login_fails_the_hub(federation: Hub, login: dict[str, Any], as_form: bool) -> None:
    if as_form:
        answer = federation.client.post("/v1/auth/login", data=login)
        assert answer.status_code in (403, 422), answer.text  # no CSRF pair: refused
    else:
        answer = federation.client.post("/v1/auth/login", json=login)
        assert answer.status_code in (401, 422), answer.text


@given(
    organisation=st.fixed_dictionaries(
        {"slug": TEXT, "name": TEXT, "kind": st.sampled_from(("cso", "nso")) | TEXT}
    ),
    user=st.fixed_dictionaries(
        {"username": TEXT, "organisation": TEXT, "display_name": st.none() | TEXT}
    ),
)
@PROPERTY
def test_no_account_body_fails_the_hub(
    federation: Hub, organisation: dict[str, Any], user: dict[str, Any]
) -> None:
    admin = federation.headers("admin")
    answer = federation.client.post("/v1/organisations", json=organisation, headers=admin)
    assert answer.status_code < 500, answer.text
    answer = federation.client.post("/v1/users", json=user, headers=admin)
    assert answer.status_code < 500, answer.text
    answer = federation.client.get(
        "/v1/users", params={"organisation": user["organisation"]}, headers=admin
    )
    assert answer.status_code < 500, answer.text
