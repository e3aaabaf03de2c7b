"""Which survey tool wrote an export, told from the columns only that tool writes.

KoboToolbox adds `_uuid`, `_submission_time`, `_index`, ... to every export (and `_parent_index`,
`_submission__uuid` to repeat sheets); ODK Central adds `SubmissionDate`, `KEY`,
`SubmitterID`, `ReviewState`, ... (and `PARENT_KEY` to repeat files). A file with those
columns is read as what it is even without `--format`; one read under another format gets a
hint naming the columns that gave it away, so a steward sees why group paths and
select_multiple columns do not line up.
"""

from node.datasets.file_format import FileFormat
from node.datasets.schemas import Issue

KOBO_MARKERS = (
    "_uuid",
    "_submission_time",
    "_submission__uuid",
    "_submission__id",
    "_parent_index",
    "_parent_table_name",
    "_validation_status",
    "_submitted_by",
    "__version__",
    "_index",
    "_id",
)
# Markers a plain spreadsheet would hardly have by chance; two of the weaker ones also do.
KOBO_STRONG = {"_uuid", "_submission_time", "_submission__uuid", "_parent_table_name"}
ODK_MARKERS = (
    "SubmissionDate",
    "KEY",
    "PARENT_KEY",
    "meta-instanceID",
    "SubmitterID",
    "SubmitterName",
    "AttachmentsPresent",
    "ReviewState",
    "FormVersion",
)
ODK_STRONG = {"SubmissionDate", "PARENT_KEY", "meta-instanceID", "ReviewState"}
TOOL_NAMES = {"kobo": "a KoboToolbox export", "odk": "an ODK Central export"}


def markers(headers: list[str], fmt: FileFormat) -> list[str]:
    """The columns of `headers` that the tool behind `fmt` writes."""
    names = {h.strip() for h in headers}
    found = KOBO_MARKERS if fmt == "kobo" else ODK_MARKERS
    return [m for m in found if m in names]


def _looks_like(headers: list[str], fmt: FileFormat) -> list[str]:
    found = markers(headers, fmt)
    strong = KOBO_STRONG if fmt == "kobo" else ODK_STRONG
    return found if (set(found) & strong or len(found) >= 2) else []


def detect(headers: list[str]) -> tuple[FileFormat | None, list[str]]:
    """Kobo, ODK or neither (None), with the marker columns that decided it."""
    kobo, odk = _looks_like(headers, "kobo"), _looks_like(headers, "odk")
    if kobo and not odk:
        return "kobo", kobo
    if odk and not kobo:
        return "odk", odk
    return None, []


def resolve(
    headers: list[str], *, given: FileFormat | None, default: FileFormat
) -> tuple[FileFormat, list[Issue]]:
    """The format to read the file as, and a hint when the one given looks wrong.

    A format named by the steward is obeyed; one detected from markers replaces only the
    default a file's kind would have given (csv, xlsx)."""
    detected, found = detect(headers)
    if given is None:
        return detected or default, []
    if detected is None or detected == given:
        return given, []
    shown = ", ".join(found[:4])
    hint = Issue(
        severity="warning",
        rule="format_hint",
        message=(
            f"the file looks like {TOOL_NAMES[detected]} (it has {shown}) but was read as"
            f" {given}: read it with --format {detected} (or leave the format out) so group"
            " paths and select_multiple columns are mapped"
        ),
    )
    return given, [hint]
