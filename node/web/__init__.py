"""The steward's web pages on the node: server-rendered HTML over the node's own services."""
