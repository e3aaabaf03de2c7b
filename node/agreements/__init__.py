"""Agreements this node has signed, and their lifecycle at the node."""
