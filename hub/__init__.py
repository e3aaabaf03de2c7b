"""Sauti hub: agreements, node registry and DP queries combined across nodes.

Every error the hub raises on purpose derives from `hub.exceptions.HubError`; the full tree,
with each stable code and HTTP status, is documented in that module's docstring.
"""
