"""Errors of the node's audit log (see the hierarchy in node/exceptions.py)."""

from node.exceptions import NodeError


class AuditError(NodeError):
    code = "audit_error"


class CheckpointNotPublished(AuditError):
    """The hub could not be reached or refused the checkpoint; it stays pending locally."""

    code = "checkpoint_not_published"
