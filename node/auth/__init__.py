"""Steward access to the node's own admin API: hashed bearer tokens, no hub involved."""
