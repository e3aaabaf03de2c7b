"""Errors of query planning against a dataset contract (see node.exceptions)."""

from node.exceptions import PrivacyError


class UnknownColumn(PrivacyError):
    code = "unknown_column"


class UnknownLevel(PrivacyError):
    code = "unknown_level"


class ColumnNotQueryable(PrivacyError):
    code = "column_not_queryable"


class DimNotCategorical(PrivacyError):
    code = "dim_not_categorical"


class MeasureNotSupported(PrivacyError):
    code = "measure_not_supported"


class CostCheckFailed(PrivacyError):
    code = "cost_check_failed"


class ColumnNotNumeric(PrivacyError):
    code = "column_not_numeric"


class BoundsMissing(PrivacyError):
    code = "bounds_missing"


class NoWeightColumn(PrivacyError):
    code = "no_weight_column"


class ReleaseTooLarge(PrivacyError):
    code = "release_too_large"


class NoiseOutOfRange(PrivacyError):
    """A noise scale no release can carry (the privacy map holds, the numbers would not)."""

    code = "noise_out_of_range"


class ColumnNotCollected(PrivacyError):
    """A column the contract marks not collected (a shared codebook's column this survey lacks):
    refused by name, never answered as zero. The same code as a module variable not collected,
    so the hub says per variable which nodes could not answer."""

    code = "variable_not_collected"
