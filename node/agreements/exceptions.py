"""Errors of agreements and of enforcing their terms (see node.exceptions)."""

from node.exceptions import AgreementError


class AgreementInvalid(AgreementError):
    code = "agreement_invalid"


class AgreementUnknown(AgreementError):
    code = "agreement_unknown"


class AgreementSuspended(AgreementError):
    code = "agreement_suspended"


class AgreementRevoked(AgreementError):
    code = "agreement_revoked"


class AgreementExpired(AgreementError):
    code = "agreement_expired"


class DatasetNotInAgreement(AgreementError):
    code = "dataset_not_in_agreement"


class MeasureNotAllowed(AgreementError):
    code = "measure_not_allowed"


class ColumnNotAllowed(AgreementError):
    code = "column_not_allowed"


class DimNotAllowed(AgreementError):
    code = "dim_not_allowed"


class TooManyDims(AgreementError):
    code = "too_many_dims"


class GridNotAllowed(AgreementError):
    code = "grid_not_allowed"


class CostOverCap(AgreementError):
    code = "cost_over_cap"


class AgreementNotYetValid(AgreementError):
    code = "agreement_not_yet_valid"


class AgreementSuperseded(AgreementError):
    code = "agreement_superseded"


class AnalystOrgNotPermitted(AgreementError):
    code = "analyst_org_not_permitted"


class DisseminationNotAllowed(AgreementError):
    code = "dissemination_not_allowed"


class TermNotInContract(AgreementError):
    code = "term_not_in_contract"


class RhoBelowFloor(AgreementError):
    code = "rho_below_floor"
