"""Hub fixtures, defined in `hub_support` so tests can import its helpers by a unique name."""

from hub_support import (  # noqa: F401 - pytest finds fixtures by name here
    federation,
    hub_home,
    hub_settings,
    make_hub,
    session,
    sim_nodes,
)
