"""JSON Schema of the v1 wire models, for partners who implement Sauti elsewhere
(`python -m sauti.json_schemas DIR` writes them out)."""

from typing import Any

from pydantic import BaseModel

from contracts import v1

EXPORTED: tuple[type[BaseModel], ...] = (
    v1.QuerySpec,
    v1.QueryRequest,
    v1.Release,
    v1.QueryResult,
    v1.AgreementTerms,
    v1.SignedAgreement,
    v1.DatasetContract,
    v1.NodeInfo,
    v1.ErrorResponse,
    v1.EnrollmentRequest,
    v1.EnrollmentSubmission,
    v1.EnrollmentAccepted,
    v1.NodePoll,
    v1.TaskBatch,
    v1.TaskRefusal,
    v1.KeyRotation,
    v1.KeyRotationSubmission,
    v1.KeyRotationAccepted,
    v1.HubKeyAnnouncement,
    v1.HubKeyRotation,
    v1.Module,
    v1.CoverageReport,
    v1.ModuleCoverageView,
    v1.SecureInvite,
    v1.SecureOffer,
    v1.SecureRoster,
    v1.SecureContribution,
)


def json_schemas() -> dict[str, dict[str, Any]]:
    return {model.__name__: model.model_json_schema() for model in EXPORTED}
