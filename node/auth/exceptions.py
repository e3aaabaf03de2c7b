"""Errors of steward authentication."""

from node.exceptions import NodeError


class Unauthenticated(NodeError):
    code = "unauthenticated"
