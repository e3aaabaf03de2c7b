"""Version 1 of the Sauti wire protocol and dataset contract."""

from contracts.v1.agreement import (
    AgreementSignature,
    AgreementTerms,
    DatasetRef,
    Party,
    SignaturePayload,
    SignedAgreement,
)
from contracts.v1.dataset import Column, DatasetContract, DatasetInfo, Level, PrivacyUnit
from contracts.v1.info import NodeInfo
from contracts.v1.query import ErrorBody, ErrorResponse, Filter, QueryRequest, QuerySpec, Signed
from contracts.v1.release import Cell, Release
from contracts.v1.result import NodeStatus, QueryResult, ResultCell

__all__ = [
    "AgreementSignature",
    "AgreementTerms",
    "Cell",
    "Column",
    "DatasetContract",
    "DatasetInfo",
    "DatasetRef",
    "ErrorBody",
    "ErrorResponse",
    "Filter",
    "Level",
    "NodeInfo",
    "NodeStatus",
    "Party",
    "PrivacyUnit",
    "QueryRequest",
    "QueryResult",
    "QuerySpec",
    "Release",
    "ResultCell",
    "SignaturePayload",
    "Signed",
    "SignedAgreement",
]
