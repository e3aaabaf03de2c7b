"""Sauti hub: agreements, node registry and DP queries combined across nodes."""
