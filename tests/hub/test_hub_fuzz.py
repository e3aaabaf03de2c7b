"""Schema-driven fuzz of the hub's OpenAPI document: no generated request is a server error.

On PostgreSQL, where text that SQLite stores silently (NUL, lone surrogates) fails a query.
"""

import pytest
from hub_support import Hub

from tests.fuzz_support import fuzz


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_no_generated_request_is_a_server_error(federation: Hub) -> None:
    document = federation.client.get("/openapi.json").json()
    report = fuzz(document, federation.client.request, headers=federation.headers("admin"))
    assert report.calls > 100
    assert report.server_errors == []
