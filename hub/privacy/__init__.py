"""Query planning at the hub: per-node costs and combined accuracy."""
