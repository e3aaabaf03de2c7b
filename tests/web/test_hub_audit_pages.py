"""The auditor's pages over the real app: who may open them, the search (newest first, paged,
actions picked from those logged, bad input flagged by its field), details as labelled lists
with links, a query's and an agreement's record, exports of a search, reconciliation."""

import csv
import io
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))
sys.path.insert(0, str(Path(__file__).parent))

from audit_support import node_exports
from hub_support import Hub
from test_hub_web_routes import PEOPLE, hub_home, hub_settings, login, make_hub, sim_nodes, web

from hub.audit import service as audit
from hub.db import init_db, make_engine

__all__ = ["hub_home", "hub_settings", "make_hub", "sim_nodes", "web"]  # fixtures, found by name

SPEC = {"agreement_id": "lnob-2026", "dataset": "lnob_household", "measure": "count"}
AUDITOR_PAGES = ("/audit", "/audit/verify", "/audit/reconcile", "/audit/export")


def _query(hub: Hub) -> str:
    asked = hub.client.post(
        "/v1/queries", json={**SPEC, "rho": 0.2}, headers=hub.headers("analyst")
    )
    assert asked.status_code == 201, asked.text
    return str(asked.json()["query_id"])


def _seqs(page: str) -> list[int]:
    body = page.split('id="audit-entries"')[1].split("</table>", maxsplit=1)[0]
    return [int(s) for s in re.findall(r'data-label="Entry">([0-9,]+)<', body.replace(",", ""))]


def test_only_auditors_open_the_auditor_pages(web: Hub) -> None:
    qid = _query(web)
    pages = (*AUDITOR_PAGES, f"/audit/queries/{qid}", "/audit/agreements/lnob-2026")
    for path in pages:
        anonymous = web.client.get(path)
        assert anonymous.status_code == 303, path
        assert anonymous.headers["location"].startswith("/login?next=")
    for who in ("amina", "sita", "grace"):
        assert who in PEOPLE
        token = login(web, who)
        for path in pages:
            denied = web.client.get(path)
            assert denied.status_code == 403, (who, path)
            assert "text/html" in denied.headers["content-type"]
        refused = web.client.post("/audit/reconcile", data={"csrf_token": token})
        assert refused.status_code == 403
    login(web, "tuan")
    for path in pages:
        assert web.client.get(path).status_code == 200, path


def test_search_is_newest_first_paged_and_picks_actions_from_the_log(web: Hub) -> None:
    engine = make_engine(web.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            for i in range(60):
                audit.append(
                    session=session, actor="user:bot", action="test.tick", object=f"tick:{i}"
                )
            session.commit()
    finally:
        engine.dispose()
    login(web, "tuan")
    page = web.client.get("/audit", params={"action": "test.tick"})
    assert page.status_code == 200
    assert '<option value="test.tick" selected>' in page.text
    assert '<option value="query.submitted">' not in page.text  # none logged yet
    assert "60 entries match, newest first." in page.text
    assert "Page 1 of 2." in page.text
    first = _seqs(page.text)
    assert len(first) == 50
    assert first == sorted(first, reverse=True)
    assert "tick:59" in page.text.split("</tr>")[1]  # the newest entry comes first
    older = web.client.get("/audit", params={"action": "test.tick", "page": "2"})
    second = _seqs(older.text)
    assert len(second) == 10
    assert max(second) < min(first)
    assert 'rel="prev"' in older.text
    assert 'rel="next"' not in older.text
    # Substrings of actor and object, wildcards taken literally.
    assert "1 entry matches" in web.client.get("/audit", params={"object": "tick:42"}).text
    assert "0 entries: nothing" in web.client.get("/audit", params={"actor": "user:%"}).text


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"since": "2026-05-02", "until": "2026-05-01"}, "until", "is before From"),
        ({"since": "2026-13-45"}, "since", "Write a date as YYYY-MM-DD"),
        ({"until": "yesterday"}, "until", "Write a date as YYYY-MM-DD"),
        ({"action": "query.deleted"}, "action", "No entry in the log has the action"),
        ({"page": "0"}, "page", "A page number is a whole number"),
        ({"page": "-3"}, "page", "A page number is a whole number"),
        ({"page": "9" * 40}, "page", "A page number is a whole number"),
        ({"page": "999999"}, "page", "There is no page"),
    ],
)
def test_bad_search_input_is_flagged_by_its_field(
    web: Hub, params: dict[str, str], field: str, message: str
) -> None:
    login(web, "tuan")
    page = web.client.get("/audit", params=params)
    assert page.status_code == 422
    assert "Traceback" not in page.text
    assert message in page.text
    assert 'id="error-summary"' in page.text
    assert "autofocus" in page.text
    assert f'id="{field}-error"' in page.text
    if field != "page":
        assert f'aria-describedby="{field}-error"' in page.text
        assert "entries match" not in page.text  # nothing was searched
    export = web.client.get("/audit/export", params=params)
    assert export.status_code == (200 if field == "page" else 422)


def test_details_are_labelled_and_ids_link_to_their_records(web: Hub) -> None:
    qid = _query(web)
    login(web, "tuan")
    page = web.client.get("/audit", params={"action": "query.submitted"}).text
    row = page.split('id="audit-entries"')[1]
    assert '<dl class="details">' in row
    assert "<dt>Nodes asked</dt>" in row
    assert "<dt>Privacy cost (rho)</dt>" in row
    assert f'<a href="/audit/queries/{qid}">query:{qid}</a>' in row
    assert '<a href="/audit/agreements/lnob-2026">lnob-2026:v1</a>' in row
    assert '{"' not in row  # no raw JSON
    record = web.client.get(f"/audit/queries/{qid}")
    assert record.status_code == 200
    nodes = record.text.split('id="query-nodes"')[1].split("</table>")[0]
    assert all(node_id in nodes for node_id in web.nodes)
    assert "query.submitted" in record.text
    assert "query.completed" in record.text
    agreement = web.client.get("/audit/agreements/lnob-2026")
    assert agreement.status_code == 200
    assert "agreement.signed" in agreement.text
    unknown = qid[:-1] + ("1" if qid.endswith("0") else "0")  # another id, never this one
    assert web.client.get(f"/audit/queries/{unknown}").status_code == 404
    assert web.client.get("/audit/queries/not-a-uuid").status_code == 422
    assert web.client.get("/audit/agreements/nope").status_code == 404


def test_export_carries_what_the_search_found_and_is_logged(web: Hub) -> None:
    qid = _query(web)
    login(web, "tuan")
    found = web.client.get("/audit/export", params={"format": "csv", "object": qid})
    assert found.status_code == 200
    assert found.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(found.text)))
    assert rows
    assert all(r["object"] == f"query:{qid}" for r in rows)
    jsonl = web.client.get("/audit/export", params={"format": "jsonl", "action": "auth.login"})
    assert jsonl.status_code == 200
    lines = jsonl.text.splitlines()
    assert '"complete":false' in lines[0]
    assert all('"action":"auth.login"' in line for line in lines[1:])
    logged = web.client.get("/audit", params={"action": "audit.exported"}).text
    assert "<dt>Format</dt><dd>csv</dd>" in logged
    assert web.client.get("/audit/export", params={"format": "xml"}).status_code == 422


def test_reconcile_reads_as_an_outcome(web: Hub) -> None:
    _query(web)
    token = login(web, "tuan")
    hub_log = web.client.get("/v1/audit/export", params={"format": "jsonl"}).text
    exports = node_exports(hub_log)
    assert set(exports) == set(web.nodes)
    files = [
        ("exports", (f"{n}.jsonl", data, "application/x-ndjson")) for n, data in exports.items()
    ]
    agreed = web.client.post("/audit/reconcile", data={"csrf_token": token}, files=files)
    assert agreed.status_code == 200
    assert "The logs agree" in agreed.text
    # One node's log left out: named as missing, in words.
    partial = web.client.post("/audit/reconcile", data={"csrf_token": token}, files=files[:1])
    assert partial.status_code == 200
    assert "Differences found" in partial.text
    assert (
        "A node&#39;s log is missing" in partial.text or "A node's log is missing" in partial.text
    )
