"""Version 1 of the Sauti wire protocol and dataset contract."""

from contracts.v1.agreement import (
    AgreementFetch,
    AgreementNotice,
    AgreementSignature,
    AgreementTerms,
    DatasetRef,
    Party,
    SignaturePayload,
    SignedAgreement,
)
from contracts.v1.dataset import (
    Column,
    DatasetContract,
    DatasetInfo,
    Geography,
    Level,
    Methodology,
    Period,
    PrivacyUnit,
    Sampling,
)
from contracts.v1.federation import (
    EnrollmentAccepted,
    EnrollmentRequest,
    EnrollmentSubmission,
    KeyRotation,
    KeyRotationSubmission,
    NodePoll,
    TaskBatch,
    TaskRefusal,
)
from contracts.v1.info import NodeInfo
from contracts.v1.query import ErrorBody, ErrorResponse, Filter, QueryRequest, QuerySpec, Signed
from contracts.v1.release import Cell, Release
from contracts.v1.result import NodeStatus, QueryResult, ResultCell

__all__ = [
    "AgreementFetch",
    "AgreementNotice",
    "AgreementSignature",
    "AgreementTerms",
    "Cell",
    "Column",
    "DatasetContract",
    "DatasetInfo",
    "DatasetRef",
    "EnrollmentAccepted",
    "EnrollmentRequest",
    "EnrollmentSubmission",
    "ErrorBody",
    "ErrorResponse",
    "Filter",
    "Geography",
    "KeyRotation",
    "KeyRotationSubmission",
    "Level",
    "Methodology",
    "NodeInfo",
    "NodePoll",
    "NodeStatus",
    "Party",
    "Period",
    "PrivacyUnit",
    "QueryRequest",
    "QueryResult",
    "QuerySpec",
    "Release",
    "ResultCell",
    "Sampling",
    "SignaturePayload",
    "Signed",
    "SignedAgreement",
    "TaskBatch",
    "TaskRefusal",
]
