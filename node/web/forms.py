"""Errors of the upload and review forms, each tied to the field it is about, to translate.

A refused upload or review shows the same form again, each error next to its field
(`aria-invalid`, `aria-describedby`) and listed in a summary that takes the focus, with
everything the steward typed kept. The messages name a rule and, for a file, rows and
lines, never a cell value. The refusals come from the same readers as `sauti node import`;
their English texts name command-line options, so the known ones are told again here in
words for a browser, translated; any other keeps its English text under a translated lead.
"""

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from node.api.errors import STATUS_BY_CODE
from node.exceptions import NodeError
from node.web.exceptions import FormInvalid
from node.web.i18n import N_

# What a file must be, as the upload form says it: refused by its name before it is read.
EXPORT_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".zip", ".parquet", ".pq")


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One refusal: the form field it is about, a message to translate and its values."""

    field: str
    message: str  # an English msgid with %(name)s placeholders
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    code: str = "form_invalid"
    detail: str = ""  # the English text of a refusal not told again here, shown as is

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 422)


class FieldInvalid(FormInvalid):
    """A form field the steward must fix; `error` says which and why (translatable)."""

    def __init__(self, error: FieldError) -> None:
        super().__init__(error.message % dict(error.values))
        self.error = error


# (pattern of the readers' English text, the field, the message in words for a browser)
_KNOWN: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"records with another number of fields than the header's (?P<width>\d+)"),
        "upload",
        N_(
            "Every row must have as many fields as the header (%(width)s). Some rows do not:"
            " the report below names them. Fix them and upload the file again."
        ),
    ),
    (
        re.compile(r"is not valid (?P<encoding>\S+) text at byte (?P<byte>\d+)"),
        "upload",
        N_(
            "The file must be text in UTF-8, UTF-16 or Windows-1252. It stops being valid"
            " %(encoding)s text at byte %(byte)s: save it as UTF-8 (CSV UTF-8 in Excel) and"
            " upload it again."
        ),
    ),
    (
        re.compile(r"the encoding of .* is not UTF-8"),
        "upload",
        N_(
            "The file must be text in UTF-8, UTF-16 or Windows-1252, and it is in none of"
            " them: save it as UTF-8 (CSV UTF-8 in Excel) and upload it again."
        ),
    ),
    (
        re.compile(r"holds binary data, not a text table"),
        "upload",
        N_("The file must be a table; this one holds binary data. Choose the survey export."),
    ),
    (
        re.compile(r"is not what its extension says"),
        "upload",
        N_(
            "A file's content must match its name's ending (.csv, .xlsx...); this one's does"
            " not. Choose the export as it was downloaded."
        ),
    ),
    (
        re.compile(r"is a legacy Excel \(\.xls\) workbook"),
        "upload",
        N_("Old Excel workbooks (.xls) are not read: save it as .xlsx or CSV and upload that."),
    ),
    (
        re.compile(r" is empty$"),
        "upload",
        N_("The file is empty."),
    ),
    (
        re.compile(r"has no header row"),
        "upload",
        N_("The file must start with a header row naming its columns; this one does not."),
    ),
    (
        re.compile(r"has no sheet (?P<name>\S+)|no repeat group (?P<group>\S+) found"),
        "table",
        N_("The file has no repeat group or sheet of that name."),
    ),
    (
        re.compile(r"is not an XLSForm workbook|has no survey sheet|no questions in its survey"),
        "codebook",
        N_(
            "The survey form must be an XLSForm workbook (.xlsx) with questions in its survey"
            " sheet."
        ),
    ),
)
_LEAD = {
    "file_unreadable": N_("The file could not be read as a table."),
    "dataset_invalid": N_("The file cannot be used as it is."),
    "codebook_invalid": N_("The codebook could not be read."),
    "import_mapping_invalid": N_("The mapping onto the shared codebook does not fit."),
    "contract_invalid": N_("The contract would not be valid."),
    "contract_conflict": N_("This contract version is already published with another text."),
}


def upload_error(exc: NodeError, *, has_codebook: bool = True) -> FieldError:
    """The field and words for a refusal of an uploaded file (or of the form around it)."""
    if isinstance(exc, FieldInvalid):
        return exc.error
    if exc.code == "file_too_large":
        limit = re.search(r"limit of (\d+) bytes", exc.message)
        megabytes = int(limit.group(1)) / 1_000_000 if limit else 0
        return FieldError(
            "upload",
            N_(
                "The file must be at most %(size)s MB (this node's import limit); this one is"
                " larger. Nothing was kept."
            ),
            {"size": f"{megabytes:g}"},
            code=exc.code,
        )
    for pattern, where, message in _KNOWN:
        found = pattern.search(exc.message)
        if found:
            at = "partner" if where == "codebook" and not has_codebook else where
            values = {k: v for k, v in found.groupdict().items() if v is not None}
            return FieldError(at, message, values, code=exc.code)
    if exc.code == "codebook_invalid":
        where = "codebook" if has_codebook else "partner"
        return FieldError(where, _LEAD[exc.code], code=exc.code, detail=exc.message)
    if exc.code == "contract_conflict":
        return FieldError("version", _LEAD[exc.code], code=exc.code, detail=exc.message)
    lead = _LEAD.get(exc.code, N_("The node refused this."))
    return FieldError("upload", lead, code=exc.code, detail=exc.message)


def check_export_name(filename: str) -> None:
    """Refuse an upload whose name says it is no survey export (a PDF, a Word file...)."""
    if not filename.lower().endswith(EXPORT_SUFFIXES):
        raise FieldInvalid(
            FieldError(
                "upload",
                N_(
                    "The file must be a survey export: CSV or TSV, Excel (.xlsx), an ODK"
                    " Central export (.zip) or Parquet."
                ),
                code="file_unreadable",
            )
        )


def required(name: str, message: str) -> FieldInvalid:
    return FieldInvalid(FieldError(name, message))


DATASET_NAME = N_("A dataset name has a-z, 0-9 and _ and starts with a letter.")
CHOOSE_FILE = N_("Choose the export file.")
