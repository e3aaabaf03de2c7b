"""Errors of dataset import and lookup (see node.exceptions for the whole hierarchy)."""

from typing import TYPE_CHECKING

from node.exceptions import DatasetError

if TYPE_CHECKING:
    from node.datasets.schemas import ValidationReport


class DatasetInvalid(DatasetError):
    """The file was read but does not satisfy its contract; the report says where."""

    code = "dataset_invalid"

    def __init__(self, message: str, report: "ValidationReport | None" = None) -> None:
        super().__init__(message)
        self.report = report


class DatasetExists(DatasetError):
    code = "dataset_exists"


class UnknownDataset(DatasetError):
    code = "unknown_dataset"


class ContractInvalid(DatasetError):
    """A contract document that does not parse or contradicts itself."""

    code = "contract_invalid"


class ContractConflict(DatasetError):
    """Another text of the same contract version is already published: versions are immutable."""

    code = "contract_conflict"


class FileUnreadable(DatasetError):
    """Empty, not what its extension or --format says, unknown encoding, not a table."""

    code = "file_unreadable"


class FileTooLarge(DatasetError):
    code = "file_too_large"


class CodebookInvalid(DatasetError):
    """An XLSForm without a usable survey sheet."""

    code = "codebook_invalid"


class UploadExpired(DatasetError):
    """A staged upload (a draft under review in the browser) is gone: expired or finished."""

    code = "upload_expired"


class ImportMappingInvalid(DatasetError):
    """A mapping of exports onto a contract that does not fit it (names contract columns)."""

    code = "import_mapping_invalid"
