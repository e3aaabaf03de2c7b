"""Pull nodes at the hub: signed long polls, answers, refusals, deadlines and bad input."""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from federation_support import enroll, poll, poll_body, refusal_for, release_for
from hub_support import Hub, SimNode, count_cell, make_terms
from joserfc import jws

from contracts import signing
from contracts.v1 import KeyRotation

SPEC: dict[str, Any] = {
    "agreement_id": "lnob-2026",
    "dataset": "lnob_household",
    "measure": "count",
    "group_by": ["sex"],
    "rho": 0.2,
}


def sim(hub_key: dict[str, Any], node_id: str, country: str, female: float) -> SimNode:
    return SimNode(
        node_id=node_id,
        country=country,
        hub_key=hub_key,
        cells={
            ("female",): count_cell(("female",), female),
            ("male",): count_cell(("male",), 10.0),
        },
    )


@pytest.fixture
def mixed(make_hub: Callable[..., Hub], hub_home: Any) -> Hub:
    """A push node `ke-a` and two pull nodes `np-pull`, `bd-pull`, all party to the agreement."""
    push = sim(hub_home.public_jwk, "ke-a", "404", 100.0)
    pulls = [
        sim(hub_home.public_jwk, "np-pull", "524", 30.0),
        sim(hub_home.public_jwk, "bd-pull", "050", 7.0),
    ]
    hub = make_hub([push])
    hub.register(push)
    for node in pulls:
        assert enroll(hub, node).status_code == 201
        hub.nodes[node.node_id] = node
    assert hub.agree(make_terms([push, *pulls]))["status"] == "active"
    return hub


def submit(hub: Hub, **params: Any) -> dict[str, Any]:
    response = hub.client.post(
        "/v1/queries", json=SPEC, params={"wait": 0, **params}, headers=hub.headers("analyst")
    )
    assert response.status_code in (201, 202), response.text
    body: dict[str, Any] = response.json()
    return body


def read(hub: Hub, query_id: str, wait: float = 0) -> dict[str, Any]:
    response = hub.client.get(
        f"/v1/queries/{query_id}", params={"wait": wait}, headers=hub.headers("analyst")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def outcomes(result: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {n["node_id"]: (n["outcome"], n["error_code"]) for n in result["nodes"]}


def post(hub: Hub, path: str, token: str) -> Any:
    return hub.client.post(f"/v1/federation/{path}", json={"jws": token})


def test_push_and_pull_combine_as_releases_arrive(mixed: Hub) -> None:
    first = submit(mixed)
    assert first["status"] == "running"
    assert outcomes(first)["np-pull"] == ("pending", None)
    assert first["deadline"] is not None

    np, bd = mixed.nodes["np-pull"], mixed.nodes["bd-pull"]
    (task,) = poll(mixed, np)
    assert post(mixed, "releases", release_for(np, task)).status_code == 202
    # The release is recorded before its 202: a waiting read runs out (bd-pull owes its
    # answer) and shows the progress; half a second of waiting shows as much as five.
    progress = read(mixed, first["query_id"], wait=0.5)
    assert progress["status"] == "running"  # bd-pull has not answered yet
    assert outcomes(progress)["np-pull"] == ("ok", None)
    cells = {tuple(c["key"]): c for c in progress["cells"]}
    assert sorted(cells[("female",)]["nodes"]) == ["ke-a", "np-pull"]

    (task,) = poll(mixed, bd)
    assert post(mixed, "refusals", refusal_for(bd, task)).status_code == 202
    done = read(mixed, first["query_id"], wait=5)
    assert done["status"] == "partial"
    assert outcomes(done)["bd-pull"] == ("refused", "budget_exhausted")
    assert next(n for n in done["nodes"] if n["node_id"] == "bd-pull")["message"]
    cells = {tuple(c["key"]): c for c in done["cells"]}
    assert cells[("female",)]["estimate"] == pytest.approx(130.0)
    assert done["completed_at"] is not None
    # An answered task is not handed out again.
    assert poll(mixed, np) == []


def test_deadline_completes_with_what_arrived_never_imputing(mixed: Hub) -> None:
    query = submit(mixed, ttl_seconds=1)
    np = mixed.nodes["np-pull"]
    (task,) = poll(mixed, np)  # collected, never answered: timed out
    # bd-pull never polls: its task expires uncollected.
    done = read(mixed, query["query_id"], wait=10)
    assert done["status"] == "partial"
    assert outcomes(done) == {
        "ke-a": ("ok", None),
        "np-pull": ("timeout", "node_timeout"),
        "bd-pull": ("expired", "task_expired"),
    }
    for cell in done["cells"]:
        assert cell["nodes"] == ["ke-a"]
    female = next(c for c in done["cells"] if c["key"] == ["female"])
    assert female["estimate"] == pytest.approx(100.0)
    # The answer after the deadline is refused and changes nothing.
    late = post(mixed, "releases", release_for(np, task))
    assert late.status_code == 404
    assert late.json()["error"]["code"] == "task_unknown"
    assert read(mixed, query["query_id"]) == done
    # Expired tasks are no longer handed out.
    assert poll(mixed, mixed.nodes["bd-pull"]) == []


def test_long_poll_wakes_when_a_task_arrives(mixed: Hub) -> None:
    np = mixed.nodes["np-pull"]
    body = poll_body(mixed, np, wait=20)

    async def long_poll() -> Any:
        return await mixed.client._client.post("/v1/federation/poll", json=body)

    future = mixed.client.portal.start_task_soon(long_poll)
    query = submit(mixed)
    response = future.result(timeout=30)
    assert response.status_code == 200
    tasks = response.json()["tasks"]
    assert len(tasks) == 1
    assert query["query_id"] in signing.unverified_payload(tasks[0]["jws"]).decode()


def test_replayed_stale_and_forged_polls_are_refused_and_logged(
    mixed: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hub.federation")
    np = mixed.nodes["np-pull"]
    body = poll_body(mixed, np)
    assert mixed.client.post("/v1/federation/poll", json=body).status_code == 200
    replay = mixed.client.post("/v1/federation/poll", json=body)
    assert (replay.status_code, replay.json()["error"]["code"]) == (409, "replayed")

    stale = poll_body(mixed, np, issued_at=datetime.now(UTC) - timedelta(hours=1))
    response = mixed.client.post("/v1/federation/poll", json=stale)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "message_stale")

    stranger = poll_body(mixed, np, key=signing.generate_key())
    response = mixed.client.post("/v1/federation/poll", json=stranger)
    assert response.status_code == 401

    # The pinned key id in the header, signed by another key.
    forged_payload = signing.canonical_json(
        {
            "hub_id": mixed.identity.hub_id,
            "node_id": np.node_id,
            "nonce": "f" * 32,
            "issued_at": datetime.now(UTC).isoformat(),
            "wait_seconds": 0,
            "max_tasks": 5,
        }
    )
    forged = jws.serialize_compact(
        {"alg": "Ed25519", "kid": signing.key_id(np.key)},
        forged_payload,
        signing.generate_key(),
        algorithms=["Ed25519"],
    )
    response = mixed.client.post("/v1/federation/poll", json={"jws": forged})
    assert (response.status_code, response.json()["error"]["code"]) == (
        401,
        "node_signature_invalid",
    )
    other_hub = poll_body(mixed, np, hub_id="another-hub")
    assert mixed.client.post("/v1/federation/poll", json=other_hub).status_code == 401
    assert caplog.text.count("refused /v1/federation/poll") >= 5
    assert "node_signature_invalid" in caplog.text


def test_answers_for_another_node_or_unsent_query_are_refused(mixed: Hub) -> None:
    query = submit(mixed)
    np, bd = mixed.nodes["np-pull"], mixed.nodes["bd-pull"]
    (np_task,) = poll(mixed, np)
    # bd signs a release that claims to be np's: the key and the node id disagree.
    np_release = release_for(np, np_task)
    claimed = signing.verify_model(
        np_release, signing.load_public_key(signing.public_jwk(np.key)), _release_model()
    )
    as_bd = signing.sign(claimed, bd.key)
    response = post(mixed, "releases", as_bd)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "node_key_mismatch")
    # bd answers np's request under its own name: not the request bd was sent.
    response = post(
        mixed, "releases", signing.sign(claimed.model_copy(update={"node_id": bd.node_id}), bd.key)
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "release_invalid")
    # A release for a query id the hub never sent.
    fake = claimed.model_copy(update={"query_id": UUID("00000000-0000-4000-8000-000000000000")})
    response = post(mixed, "releases", signing.sign(fake, np.key))
    assert (response.status_code, response.json()["error"]["code"]) == (404, "task_unknown")
    # A release that does not answer what was sent (another rho).
    response = post(
        mixed, "releases", signing.sign(claimed.model_copy(update={"rho": 0.3}), np.key)
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "release_invalid")
    # Nothing was stored: np's task is still open.
    assert outcomes(read(mixed, query["query_id"]))["np-pull"] == ("pending", None)
    assert post(mixed, "releases", np_release).status_code == 202
    # The same release again (a replay) is refused and changes nothing.
    before = read(mixed, query["query_id"])
    replay = post(mixed, "releases", np_release)
    assert (replay.status_code, replay.json()["error"]["code"]) == (404, "task_unknown")
    assert read(mixed, query["query_id"]) == before


def _release_model() -> Any:
    from contracts.v1 import Release  # noqa: PLC0415

    return Release


@pytest.mark.parametrize("path", ["poll", "releases", "refusals"])
def test_oversized_and_malformed_bodies_are_refused(mixed: Hub, path: str) -> None:
    url = f"/v1/federation/{path}"
    huge = b'{"jws": "' + b"a" * (mixed.settings.body_max_bytes + 10) + b'"}'
    response = mixed.client.post(url, content=huge, headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (413, "too_large")
    for content in (b"{not json", b'{"jws": 5}', b'{"jws": "abcdefghijk", "more": 1}', b"[]"):
        response = mixed.client.post(url, content=content)
        assert response.status_code == 422, content
        assert response.json()["error"]["code"] == "invalid_request"
    response = mixed.client.post(url, json={"jws": "a.b.c" * 4})
    assert response.status_code == 401


def test_removed_pull_node_can_no_longer_poll_or_answer(mixed: Hub) -> None:
    submit(mixed)
    np = mixed.nodes["np-pull"]
    (task,) = poll(mixed, np)
    mixed.client.request("DELETE", "/v1/nodes/np-pull", headers=mixed.headers("secretariat"))
    response = mixed.client.post("/v1/federation/poll", json=poll_body(mixed, np))
    assert (response.status_code, response.json()["error"]["code"]) == (403, "node_removed")
    response = post(mixed, "releases", release_for(np, task))
    assert response.status_code == 403
    # New queries no longer ask it.
    assert "np-pull" not in outcomes(submit(mixed))


def test_release_signed_with_the_previous_key_counts_during_the_overlap(mixed: Hub) -> None:
    query = submit(mixed)
    np = mixed.nodes["np-pull"]
    (task,) = poll(mixed, np)
    release = release_for(np, task)  # signed (and stored at the node) before rotating
    new_key = signing.generate_key()
    payload = KeyRotation(
        hub_id=mixed.identity.hub_id,
        node_id=np.node_id,
        new_public_jwk=signing.public_jwk(new_key),
        issued_at=datetime.now(UTC),
        nonce="r" * 32,
    )
    response = mixed.client.post(
        f"/v1/nodes/{np.node_id}/keys",
        json={
            "by_current_key": signing.sign(payload, np.key),
            "by_new_key": signing.sign(payload, new_key),
        },
    )
    assert response.status_code == 200, response.text
    assert post(mixed, "releases", release).status_code == 202
    assert outcomes(read(mixed, query["query_id"]))["np-pull"] == ("ok", None)
    # From now on the node polls with its new key.
    np.key = new_key
    assert mixed.client.post("/v1/federation/poll", json=poll_body(mixed, np)).status_code == 200


def test_a_node_signed_refusal_with_a_nul_is_refused_and_stores_nothing(mixed: Hub) -> None:
    """However well signed, text a database cannot store never gets past the hub's edge."""
    query = submit(mixed)
    np = mixed.nodes["np-pull"]
    (task,) = poll(mixed, np)
    for code in ("budget\x00exhausted", "budget_exhausted\x1b[2K"):
        response = post(mixed, "refusals", refusal_for(np, task, code=code))
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        assert "code (control_character)" in response.json()["error"]["message"]
    assert outcomes(read(mixed, query["query_id"]))["np-pull"] == ("pending", None)
    assert post(mixed, "refusals", refusal_for(np, task)).status_code == 202
