"""Hub fixtures, defined in `hub_support` so tests can import its helpers by a unique name."""

import pytest
from database_support import Side
from hub_support import (  # noqa: F401 - pytest finds fixtures by name here
    federation,
    hub_home,
    hub_settings,
    make_hub,
    session,
    sim_nodes,
)


@pytest.fixture
def database_schema() -> Side | None:
    """Hub tests' fresh databases hold the hub's schema at head (tests/database_support)."""
    return "hub"
