"""Errors of enrollment and pull mode (see node.exceptions)."""

from node.exceptions import NodeError


class SyncError(NodeError):
    code = "sync_error"


class EnrollmentFailed(SyncError):
    code = "enrollment_failed"


class NotEnrolled(SyncError):
    code = "not_enrolled"


class HubNotReached(SyncError):
    code = "hub_unreachable"


class KeyRotationFailed(SyncError):
    code = "key_rotation_failed"


class RotationUnconfirmed(KeyRotationFailed):
    """The hub's answer to a rotation is not signed by the pinned hub key: key stays pending."""

    code = "rotation_unconfirmed"
