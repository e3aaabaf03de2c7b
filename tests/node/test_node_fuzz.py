"""Schema-driven fuzz of the node's OpenAPI document: no generated request is a server error.

On PostgreSQL, where text that SQLite stores silently (NUL, lone surrogates) fails a query.
"""

import pytest

from node.auth import service as auth
from tests.fuzz_support import fuzz
from tests.node.conftest import Node


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_no_generated_request_is_a_server_error(node: Node) -> None:
    document = node.client.get("/openapi.json").json()
    token = auth.create_token(database_url=node.settings.db_url, name="fuzz")
    report = fuzz(document, node.client.request, headers={"Authorization": f"Bearer {token}"})
    assert report.calls > 50
    assert report.server_errors == []
