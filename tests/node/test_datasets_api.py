"""Steward dataset routes: authorization, imports by upload, reports, deletion, no raw values."""

import json

import pytest

from node.audit import service as audit
from node.auth import service as auth
from tests.node.conftest import Node
from tests.node.datasets_support import (
    IDENT_CANARY,
    PHONE_CANARY,
    kobo_contract,
    kobo_csv,
    write_delimited,
)

ROUTES = [
    ("GET", "/v1/steward/datasets"),
    ("GET", "/v1/steward/datasets/survey/contract"),
    ("POST", "/v1/steward/datasets/survey/contracts"),
    ("POST", "/v1/steward/datasets/survey/draft"),
    ("POST", "/v1/steward/datasets/survey/validate"),
    ("POST", "/v1/steward/datasets/survey/imports"),
    ("DELETE", "/v1/steward/datasets/survey/versions/1"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_dataset_route_needs_a_steward_token(sqlite_node: Node, method, url) -> None:
    for headers in ({}, {"Authorization": "Bearer sauti_node_wrong"}):
        response = sqlite_node.client.request(method, url, headers=headers, content=b"x")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
    assert len(list((sqlite_node.home / "datasets" / "survey" / "versions").iterdir())) == 1


def _auth(node: Node) -> dict[str, str]:
    token = auth.create_token(database_url=node.settings.db_url, name="Sita")
    return {"Authorization": f"Bearer {token}"}


def test_import_validate_list_and_delete_by_api(node: Node, tmp_path) -> None:
    headers = _auth(node)
    client = node.client
    body = kobo_contract().to_table_schema()
    created = client.request(
        "POST", "/v1/steward/datasets/dalit_services/contracts", headers=headers, json=body
    )
    assert created.status_code == 201
    assert created.json()["created"] is True
    shown = client.request(
        "GET", "/v1/steward/datasets/dalit_services/contract?table_schema=true", headers=headers
    )
    assert shown.json()["x-privacy"]["unit_key"] == "_uuid"
    data = kobo_csv(tmp_path / "kobo.csv").read_bytes()
    url = "/v1/steward/datasets/dalit_services"
    report = client.request(
        "POST", f"{url}/validate?format=kobo&filename=kobo.csv", headers=headers, content=data
    )
    assert report.status_code == 200
    assert report.json()["ok"] is True
    imported = client.request(
        "POST", f"{url}/imports?format=kobo&filename=kobo.csv", headers=headers, content=data
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["version"]["imported_by"] == "steward:Sita"
    drafted = client.request(
        "POST", f"{url}/draft?format=kobo&filename=kobo.csv", headers=headers, content=data
    )
    assert drafted.status_code == 200
    listed = client.request("GET", "/v1/steward/datasets", headers=headers).json()
    assert [v["name"] for v in listed] == ["dalit_services", "survey"]
    deleted = client.request("DELETE", f"{url}/versions/1", headers=headers)
    assert deleted.status_code == 204
    actions = [(e.action, e.actor) for e in audit.entries(database_url=node.settings.db_url)]
    assert ("dataset_imported", "steward:Sita") in actions
    assert ("dataset_deleted", "steward:Sita") in actions
    # No route serves rows; every response above is metadata, reports or ids.
    for response in (report, imported, drafted):
        assert IDENT_CANARY not in response.text
        assert PHONE_CANARY not in response.text


def test_bad_uploads_get_clear_4xx_and_change_nothing(node: Node, tmp_path) -> None:
    headers = _auth(node)
    client = node.client
    url = "/v1/steward/datasets/survey"
    before = client.request("GET", "/v1/steward/datasets", headers=headers).json()
    bad_rows = [
        [f"r{i}", IDENT_CANARY, PHONE_CANARY, "female", "north", "dalit", "no", "200"]
        for i in range(3)
    ]
    header = ["respondent", "comment", "phone", "sex", "district", "group", "disability", "age"]
    path = write_delimited(tmp_path / "bad.csv", header, bad_rows)
    refused = client.request("POST", f"{url}/imports", headers=headers, content=path.read_bytes())
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "dataset_invalid"
    assert "column age" in refused.json()["error"]["message"]
    assert IDENT_CANARY not in refused.text
    assert PHONE_CANARY not in refused.text
    report = client.request("POST", f"{url}/validate", headers=headers, content=path.read_bytes())
    assert report.json()["ok"] is False
    assert IDENT_CANARY not in report.text
    assert "200" not in json.dumps(report.json()["issues"])
    empty = client.request("POST", f"{url}/imports", headers=headers, content=b"")
    assert (empty.status_code, empty.json()["error"]["code"]) == (422, "file_unreadable")
    fake = client.request(
        "POST", f"{url}/imports?filename=x.parquet", headers=headers, content=b"a,b\n1,2\n"
    )
    assert fake.json()["error"]["code"] == "file_unreadable"
    conflict = client.request(
        "POST",
        f"{url}/contracts",
        headers=headers,
        json={**json.loads(node_contract_json(node)), "title": "changed"},
    )
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "contract_conflict")
    invalid = client.request("POST", f"{url}/contracts", headers=headers, json={"fields": []})
    assert (invalid.status_code, invalid.json()["error"]["code"]) == (422, "contract_invalid")
    missing = client.request("DELETE", f"{url}/versions/9", headers=headers)
    assert missing.json()["error"]["code"] == "unknown_dataset"
    assert client.request("GET", "/v1/steward/datasets", headers=headers).json() == before


def node_contract_json(node: Node) -> str:
    path = node.home / "datasets" / "survey" / "contracts" / "v1.json"
    return path.read_text()


def test_uploads_over_the_limit_are_refused_413(tmp_path, db_url) -> None:
    from node.app import create_app  # noqa: PLC0415
    from node.home import init_home  # noqa: PLC0415
    from node.settings import NodeSettings  # noqa: PLC0415
    from tests.node.conftest import AppClient  # noqa: PLC0415

    home = tmp_path / "n"
    init_home(home, name="Small node", country="404")
    settings = NodeSettings(home=home, database_url=db_url, import_max_bytes=100)
    client = AppClient(create_app(settings))
    token = auth.create_token(database_url=db_url, name="x")
    response = client.request(
        "POST",
        "/v1/steward/datasets/survey/imports",
        headers={"Authorization": f"Bearer {token}"},
        content=b"a,b\n" + b"1,2\n" * 100,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (413, "file_too_large")
    assert not list((home / "datasets" / ".uploads").iterdir())
