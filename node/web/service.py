"""View models of the steward pages, built from the node's own services (no SQL, no OpenDP here).

Everything shown is metadata the steward already sees on the command line: contracts,
import manifests and validation reports (rules, columns, row numbers), agreement terms,
budget charges and audited decisions. No page reads a data file.
"""

import json
import math
import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from pydantic import ValidationError

from contracts import budget as exact
from contracts.agreement_rules import (
    PURPOSE_CODES,
    labelled,
    one_person_release_chance,
    validity_days,
)
from contracts.budget_anchor import Anchor, anchor
from contracts.v1 import AgreementTerms, Column, DatasetContract, SignedAgreement
from contracts.v1.audit import AuditEntry, AuditFilter
from contracts.v1.dataset import BoundsPolicy
from node.agreements import service as agreements
from node.agreements.schemas import AgreementRecord, SigningPreview, StatusOutcome
from node.audit import service as audit
from node.datasets import drafting, store, uploads
from node.datasets import service as datasets
from node.datasets.exceptions import DatasetInvalid
from node.datasets.file_format import FileFormat
from node.datasets.schemas import (
    ContractDraft,
    DraftNote,
    ImportMapping,
    ImportResult,
    LevelCandidate,
    ValidationReport,
    VersionInfo,
)
from node.datasets.sources import sniff
from node.exceptions import DatasetError
from node.harmonisation import store as modules
from node.harmonisation.exceptions import HarmonisationError
from node.home import NodeIdentity, load_identity
from node.ledger import service as ledger
from node.ledger.schemas import BudgetDetail, BudgetLine
from node.settings import NodeSettings
from node.web.exceptions import FormInvalid
from node.web.forms import DATASET_NAME, FieldError, FieldInvalid
from node.web.i18n import N_

# How far back the "recent requests" pages look in the audit chain.
RECENT_DAYS = 90
MAX_AGREEMENT_BYTES = 256 * 1024
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
STATUS_ACTIONS = ("suspend", "resume", "revoke")

# Why a request was refused, in words (reason codes of node/api/errors.py).
REASONS: dict[str, str] = {
    "accepted": N_("Accepted: a differentially private answer was sent"),
    "stored_release": N_("Accepted: the answer already made for this request was sent again"),
    "agreement_unknown": N_("Refused: the agreement is not signed at this node"),
    "agreement_suspended": N_("Refused: the agreement is suspended at this node"),
    "agreement_revoked": N_("Refused: the agreement is revoked at this node"),
    "agreement_expired": N_("Refused: the agreement has expired"),
    "agreement_not_yet_valid": N_("Refused: the agreement is not valid yet"),
    "agreement_superseded": N_("Refused: a newer version of the agreement is in force"),
    "dataset_not_in_agreement": N_("Refused: the dataset is not covered by the agreement"),
    "measure_not_allowed": N_("Refused: the agreement does not allow this statistic"),
    "column_not_allowed": N_("Refused: the agreement does not allow this column"),
    "dim_not_allowed": N_("Refused: the agreement does not allow this break-down"),
    "too_many_dims": N_("Refused: too many break-down columns"),
    "cost_over_cap": N_("Refused: the question costs more than the per-question cap"),
    "budget_exhausted": N_("Refused: the privacy budget is spent"),
    "analyst_org_not_permitted": N_("Refused: the analyst's organisation may not ask"),
    "dissemination_not_allowed": N_("Refused: the requested use of results is not allowed"),
    "request_expired": N_("Refused: the request was too old"),
    "signature_invalid": N_("Refused: the request signature did not verify"),
    "wrong_node": N_("Refused: the request was for another node"),
    "rho_below_floor": N_("Refused: the question costs less than the agreement's lowest cost"),
    "grid_not_allowed": N_("Refused: the agreement does not allow this grid of values"),
    "column_not_queryable": N_("Refused: this column may never be released"),
    "unknown_column": N_("Refused: the dataset has no such column"),
    "unknown_level": N_("Refused: a filter names a category the codebook does not have"),
    "unknown_dataset": N_("Refused: the dataset is not held at this node"),
    "measure_not_supported": N_("Refused: this statistic cannot be computed on this column"),
    "release_failed": N_("Refused: the node could not compute the answer"),
    "query_id_conflict": N_("Refused: the request reused the number of another request"),
}
REFUSED_OTHER = N_("Refused by a rule of the node")
STATUS_TEXT: dict[str, str] = {
    "active": N_("active"),
    "suspended": N_("suspended"),
    "revoked": N_("revoked"),
}
MEASURES: dict[str, str] = {
    "count": N_("counts of respondents"),
    "share": N_("shares (proportions) of respondents"),
    "sum": N_("sums"),
    "mean": N_("means"),
    "quantile": N_("quantiles (such as medians)"),
    "histogram": N_("histograms"),
}
DISSEMINATION: dict[str, str] = {
    "public": N_("Results may be published openly."),
    "partners": N_("Results may be shared only among the partners to this agreement."),
    "restricted": N_(
        "Results stay with the permitted analyst organisations and may not be passed on."
    ),
}
PERIODS: dict[str, str] = {
    "validity": N_("for the whole validity of the agreement, amendments included"),
    "calendar_year": N_("for each calendar year, granted afresh every 1 January"),
    "quarter": N_("for each calendar quarter, granted afresh every three months"),
}
# The plain scale of a privacy spend (contracts.budget_anchor.SCALE_TEXT, translated).
SCALES: dict[str, str] = {
    "very_little": N_("very little can be learned about any one person"),
    "little": N_("little can be learned about any one person"),
    "moderate": N_("a moderate amount can be learned about one person"),
    "a_lot": N_("a lot can be learned about one person"),
    "very_much": N_("very much can be learned about one person"),
}
# How the hub answered a signature (node.agreements: hub_answer codes), in words.
HUB_ANSWERS: dict[str, str] = {
    "agreement_not_found": N_("the hub does not hold this version"),
    "node_signature_invalid": N_("the hub does not recognise this node's key"),
    "digest_mismatch": N_("the hub holds another text of this version"),
    "replayed": N_("the hub saw this delivery before"),
}
ROLES: dict[str, str] = {
    "secretariat": N_("secretariat"),
    "cso": N_("civil society organisation"),
    "nso": N_("national statistics office"),
    "other": N_("other"),
}


@dataclass(frozen=True)
class AgreementSummary:
    agreement_id: str
    title: str
    version: int
    status: str
    signed_at: datetime
    budget: BudgetLine | None


@dataclass(frozen=True)
class Decision:
    seq: int
    at: datetime
    query_id: str
    agreement_id: str | None
    version: int | None
    code: str
    accepted: bool
    measure: str | None
    group_by: tuple[str, ...]
    column: str | None = None
    dataset: str | None = None
    # Columns that filter the question (the levels chosen are never logged).
    filters: tuple[str, ...] = ()
    organisation: str | None = None
    # What the question would cost; `charged` is what it did (refusals and repeats: zero).
    rho: Decimal | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return REASONS.get(self.code, REFUSED_OTHER)

    @property
    def charged(self) -> Decimal:
        return self.rho if self.code == "accepted" and self.rho is not None else exact.ZERO

    def label(self, name: str) -> str:
        return labelled(name, self.labels)

    @property
    def group_by_text(self) -> str:
        return ", ".join(self.label(dim) for dim in self.group_by)


@dataclass(frozen=True)
class Dashboard:
    identity: NodeIdentity
    datasets: int
    versions: int
    agreements: list[AgreementSummary]
    decisions: list[Decision]
    accepted: int
    refused: int


@dataclass(frozen=True)
class DatasetView:
    name: str
    title: str
    contract_versions: tuple[int, ...]
    versions: list[VersionInfo]


@dataclass(frozen=True)
class ChartPoint:
    at: datetime
    query_id: str
    rho: Decimal
    spent: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class BudgetChart:
    """The current period's spending as an SVG step line, and the same numbers as a table."""

    width: int
    height: int
    path: str
    budget_y: float
    rho_budget: Decimal
    rho_spent: Decimal
    start: datetime
    end: datetime
    points: list[ChartPoint]
    ticks: list[tuple[float, Decimal]] = field(default_factory=list)


@dataclass(frozen=True)
class AgreementDetail:
    agreement_id: str
    status: str
    records: list[AgreementRecord]
    terms: AgreementTerms
    budget: BudgetDetail
    chart: BudgetChart
    decisions: list[Decision]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Review:
    preview: SigningPreview
    agreement: SignedAgreement
    document: str
    labels: Mapping[str, str] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


# --- dashboard, datasets -------------------------------------------------------------------------


def dashboard(*, settings: NodeSettings) -> Dashboard:
    versions = datasets.list_versions(home=settings.home)
    newest: deque[Decision] = deque(maxlen=5)
    accepted = refused = 0
    for decision in _recent(settings=settings, agreement_id=None):
        newest.append(decision)
        accepted += decision.accepted
        refused += not decision.accepted
    return Dashboard(
        identity=load_identity(settings.home),
        datasets=len({v.name for v in versions}),
        versions=len(versions),
        agreements=agreement_list(settings=settings),
        decisions=list(reversed(newest)),
        accepted=accepted,
        refused=refused,
    )


def dataset_list(*, settings: NodeSettings) -> list[DatasetView]:
    # A dataset whose contract is published but nothing imported yet is listed too: its
    # import form is how the steward brings the first file in.
    by_name: dict[str, list[VersionInfo]] = {
        name: []
        for name in store.names(settings.home)
        if store.contract_versions(settings.home, name)
    }
    for info in datasets.list_versions(home=settings.home):
        by_name.setdefault(info.name, []).append(info)
    out = []
    for name, versions in sorted(by_name.items()):
        published = store.contract_versions(settings.home, name)
        contract_versions = tuple(sorted({*published, *(v.contract_version for v in versions)}))
        newest = datasets.get_contract(home=settings.home, name=name, version=None)
        out.append(
            DatasetView(
                name=name,
                title=newest.title,
                contract_versions=contract_versions,
                versions=sorted(versions, key=lambda v: -v.version),
            )
        )
    return out


@dataclass(frozen=True)
class HeldModule:
    """A shared module pinned here, offered as a codebook to draft from."""

    name: str
    version: int
    title: str

    @property
    def value(self) -> str:
        return f"{self.name}:{self.version}"


def held_modules(*, settings: NodeSettings) -> list[HeldModule]:
    """The modules pinned here whose hub signature verifies (a broken file is left out: the
    draft would refuse it by name)."""
    held = []
    folder = settings.home / modules.MODULES
    for path in sorted(folder.glob("*.jws")) if folder.is_dir() else []:
        try:
            module = modules.verify_module(settings.home, path.read_text(encoding="utf-8"))
        except (HarmonisationError, OSError, UnicodeDecodeError):
            continue
        held.append(HeldModule(name=module.name, version=module.version, title=module.title))
    return held


def version_detail(
    *, settings: NodeSettings, name: str, version: int
) -> tuple[VersionInfo, ValidationReport | None]:
    report = datasets.validation_report(home=settings.home, name=name, version=version)
    info = next(
        v for v in datasets.list_versions(home=settings.home, name=name) if v.version == version
    )
    return info, report


@dataclass(frozen=True)
class ImportOutcome:
    """A checked or imported upload: the report, and the new version unless it was a check."""

    report: ValidationReport
    version: VersionInfo | None
    checked_only: bool


@dataclass(frozen=True)
class UploadOptions:
    """How to read an upload, as the command line's --format, --repeat/--sheet, --keep-first."""

    fmt: FileFormat | None = None
    table: str | None = None  # a repeat group (ODK) or a sheet (Kobo XLSX, any workbook)
    keep_first: bool = False
    module: str | None = None  # drafting from a shared module held here: name and version
    module_version: int | None = None

    @property
    def shared_module(self) -> str:
        """The form field that carries the module through the review rounds."""
        return f"{self.module}:{self.module_version}" if self.module else ""


FORMATS: tuple[FileFormat, ...] = ("kobo", "odk", "csv", "xlsx", "parquet")
_TABLE = re.compile(r"^[A-Za-z0-9_ .\-]{1,64}$")


def upload_options(fields: Mapping[str, str]) -> UploadOptions:
    """The reading options of an upload form; a malformed one is named, never echoed."""
    fmt = fields.get("format", "") or None
    if fmt is not None and fmt not in FORMATS:
        raise FieldInvalid(FieldError("format", N_("Choose a format from the list.")))
    table = fields.get("table", "").strip() or None
    if table is not None and not _TABLE.match(table):
        raise FieldInvalid(
            FieldError(
                "table", N_("A repeat group or sheet name has letters, digits, _ - and . only.")
            )
        )
    module, _, version = fields.get("shared_module", "").strip().partition(":")
    if module and not (_NAME.match(module) and version.isdigit() and 0 < int(version) < 10**6):
        raise FieldInvalid(FieldError("shared_module", N_("Choose a module from the list.")))
    return UploadOptions(
        fmt=fmt,
        table=table,
        keep_first=fields.get("keep_first") == "yes",
        module=module or None,
        module_version=int(version) if module else None,
    )


def _reading(
    settings: NodeSettings, staged: uploads.Staged, options: UploadOptions
) -> dict[str, Any]:
    """The read_table arguments of a staged upload: a workbook's table is a sheet, any other
    file's a repeat group."""
    kind = sniff(staged.export, fmt=options.fmt, max_bytes=settings.import_max_bytes).kind
    where = "sheet" if kind == "xlsx" else "repeat"
    return {
        "path": staged.export,
        "fmt": options.fmt,
        "codebook_path": staged.codebook,
        where: options.table,
    }


def import_staged(
    *,
    settings: NodeSettings,
    staged: uploads.Staged,
    dataset: str,
    options: UploadOptions,
    check_only: bool,
    by: str,
    contract: DatasetContract | None = None,
    mapping: ImportMapping | None = None,
) -> ImportOutcome:
    """Check (or import, whole or nothing) a staged upload against the dataset's newest
    contract (or `contract`, published with the import, with `mapping` when it was drafted
    from a shared codebook), as `sauti node import` does."""
    if not _NAME.match(dataset):
        raise FieldInvalid(FieldError("dataset", DATASET_NAME))
    try:
        result = datasets.import_file(
            home=settings.home,
            dataset=dataset,
            contract=contract,
            settings=settings,
            imported_by=by,
            dry_run=check_only,
            excess="keep_first" if options.keep_first else "refuse",
            mapping=mapping,
            **_reading(settings, staged, options),
        )
    except DatasetInvalid as exc:
        if exc.report is None:
            raise
        return ImportOutcome(report=exc.report, version=None, checked_only=check_only)
    if isinstance(result, ImportResult):
        return ImportOutcome(report=result.report, version=result.version, checked_only=False)
    return ImportOutcome(report=result, version=None, checked_only=True)


# --- drafting a contract from an upload --------------------------------------------------------


@dataclass(frozen=True)
class DraftRow:
    """One column of the file on the review page: what the draft proposes, and why."""

    name: str
    column: Column | None
    notes: tuple[DraftNote, ...]
    candidate: LevelCandidate | None
    levels: str  # the levels the steward typed, to show again
    lower: str
    upper: str
    policy: str
    estimated: str = ""  # "lower,upper,rho" of bounds the DP rule proposed, sent back as is
    shared: bool = False  # a column of the shared codebook drafted from
    local: str = ""  # the file's column it is read from (shared codebooks)
    recode: str = ""  # the file's own codes onto its levels, "VALUE:LEVEL, ..." (steward only)


@dataclass(frozen=True)
class DraftView:
    token: str
    dataset: str
    title: str
    version: int
    filename: str
    codebook: str | None
    options: UploadOptions
    draft: ContractDraft
    rows: list[DraftRow]
    general: tuple[DraftNote, ...]  # notes about the whole file
    shown: frozenset[str]
    partner: str | None = None  # the partner's codebook file drafted from, if any
    errors: tuple[FieldError, ...] = ()  # fields of the review form to fix
    typed_version: str = ""  # a version that could not be read, shown as typed

    def error(self, name: str) -> FieldError | None:
        return next((e for e in self.errors if e.field == name), None)

    @property
    def document(self) -> str:
        return json.dumps(self.draft.contract.to_table_schema(), indent=2, ensure_ascii=False)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def draft_choices(
    fields: Mapping[str, str], shown: frozenset[str]
) -> tuple[drafting.Choices, tuple[FieldError, ...]]:
    """The steward's decisions on the review form, as the drafting service takes them, and
    the fields to fix (a decision that cannot be read is left out of the draft, not guessed)."""
    categorical: dict[str, tuple[str, ...]] = {}
    bounds: dict[str, tuple[float, float, BoundsPolicy]] = {}
    columns: dict[str, str | None] = {}
    recode: dict[str, dict[str, str | None]] = {}
    errors: list[FieldError] = []
    for key, text in fields.items():
        if key.startswith("levels__") and text.strip():
            column = key[len("levels__") :]
            try:
                categorical[column] = drafting.parse_categorical(f"{column}={text}")[1]
            except ValueError:
                errors.append(FieldError(key, N_("Write the levels separated by commas.")))
        if key.startswith("column__"):
            columns[key[len("column__") :]] = text.strip() or None
        if key.startswith("recode__") and text.strip():
            column = key[len("recode__") :]
            try:
                recode[column] = drafting.parse_recode(f"{column}={text}")[1]
            except ValueError:
                errors.append(
                    FieldError(key, N_("Write your codes as CODE:LEVEL, separated by commas."))
                )
        if key.startswith("lower__"):
            column = key[len("lower__") :]
            _bounds(fields, column, bounds, errors)
    if fields.get("version", "").strip() and not _VERSION.match(fields["version"].strip()):
        errors.append(FieldError("version", N_("A contract version is a whole number from 1.")))
    choices = drafting.Choices(
        categorical=categorical,
        show_levels=shown,
        bounds=bounds,
        estimated=_estimated(fields, bounds),
        columns=columns,
        recode=recode,
    )
    return choices, tuple(errors)


_VERSION = re.compile(r"^[1-9][0-9]{0,5}$")


def _bounds(
    fields: Mapping[str, str],
    column: str,
    bounds: dict[str, tuple[float, float, BoundsPolicy]],
    errors: list[FieldError],
) -> None:
    """A measure's bounds from the review form, or the fields to fix."""
    lower_text = fields.get(f"lower__{column}", "").strip()
    upper_text = fields.get(f"upper__{column}", "").strip()
    if not lower_text and not upper_text:
        return
    policy = fields.get(f"policy__{column}", "clip")
    if policy not in ("clip", "refuse"):
        errors.append(FieldError(f"policy__{column}", N_("Choose what to do from the list.")))
        return
    low, high = _number(lower_text), _number(upper_text)
    for name, text, value in (("lower", lower_text, low), ("upper", upper_text, high)):
        if not text:
            errors.append(FieldError(f"{name}__{column}", N_("Give both bounds, or neither.")))
        elif value is None:
            errors.append(FieldError(f"{name}__{column}", N_("Write a number, like 0 or 12.5.")))
    if low is None or high is None:
        return
    if low > high:
        errors.append(
            FieldError(f"lower__{column}", N_("The lower bound must not be above the upper bound."))
        )
        return
    bounds[column] = (low, high, cast(BoundsPolicy, policy))


def _estimated(
    fields: Mapping[str, str], bounds: Mapping[str, tuple[float, float, BoundsPolicy]]
) -> dict[str, float]:
    """Bounds sent back exactly as the DP rule proposed them stay marked DP-estimated (the
    form carries `estimated__COLUMN` = "lower,upper,rho"), so publishing them is audited."""
    kept = {}
    for column, (low, high, _policy) in bounds.items():
        parts = fields.get(f"estimated__{column}", "").split(",")
        try:
            lower, upper, rho = (float(p) for p in parts)
        except ValueError:
            continue
        if (lower, upper) == (low, high) and math.isfinite(rho) and rho > 0:
            kept[column] = rho
    return kept


def _next_version(settings: NodeSettings, dataset: str) -> int:
    return max(store.contract_versions(settings.home, dataset), default=0) + 1


def draft_staged(
    *,
    settings: NodeSettings,
    staged: uploads.Staged,
    dataset: str,
    options: UploadOptions,
    fields: Mapping[str, str] | None = None,
    shown: frozenset[str] = frozenset(),
) -> DraftView:
    """The draft of a staged upload with the steward's choices so far (`sauti node contract
    draft`'s code path: the same drafting, the same rules)."""
    if not _NAME.match(dataset):
        raise FieldInvalid(FieldError("dataset", DATASET_NAME))
    fields = fields or {}
    choices, errors = draft_choices(fields, shown)
    reading = _reading(settings, staged, options)
    proposed = datasets.draft_contract(
        home=settings.home,
        name=dataset,
        settings=settings,
        choices=choices,
        from_module=options.module,
        module_version=options.module_version,
        from_contract=staged.partner,
        **reading,
    )
    title = fields.get("title", "").strip()[:200] or proposed.contract.title
    typed = fields.get("version", "").strip()
    version = int(typed) if _VERSION.match(typed) else 0
    # A shared codebook names the version partners publish; otherwise the next free one.
    shared_version = proposed.contract.version if proposed.shared else 0
    version = version or shared_version or _next_version(settings, dataset)
    contract = proposed.contract.model_copy(update={"title": title, "version": version})
    mapping = proposed.mapping
    if mapping is not None:
        mapping = mapping.model_copy(update={"contract_version": version})
    proposed = proposed.model_copy(update={"contract": contract, "mapping": mapping})
    by_column: dict[str, list[DraftNote]] = {}
    general = []
    for note in proposed.notes:
        if note.column:
            by_column.setdefault(note.column, []).append(note)
        else:
            general.append(note)
    candidates = {c.column: c for c in proposed.candidates}
    rows = []
    wrong = {e.field for e in errors}
    for name, notes in by_column.items():
        column = contract.column(name)
        lower = "" if column is None or column.lower is None else f"{column.lower:g}"
        upper = "" if column is None or column.upper is None else f"{column.upper:g}"
        if {f"lower__{name}", f"upper__{name}"} & wrong:
            # What the steward typed stays in the fields to fix, not the draft's value.
            lower, upper = fields.get(f"lower__{name}", ""), fields.get(f"upper__{name}", "")
        rho = column.bounds_rho if column is not None else None
        rows.append(
            DraftRow(
                name=name,
                column=column,
                notes=tuple(notes),
                candidate=candidates.get(name),
                levels=fields.get(f"levels__{name}", ""),
                lower=lower,
                upper=upper,
                policy=_typed_policy(fields, name)
                or (column.bounds_policy if column is not None else "refuse"),
                estimated="" if rho is None else f"{lower},{upper},{rho:g}",
                **_shared_row(name, column, mapping, fields, wrong) if proposed.shared else {},
            )
        )
    return DraftView(
        token=staged.token,
        dataset=dataset,
        title=title,
        version=version,
        filename=staged.filename,
        codebook=staged.codebook.name if staged.codebook else None,
        options=options,
        draft=proposed,
        rows=rows,
        general=tuple(general),
        shown=shown,
        partner=staged.partner.name if staged.partner else None,
        errors=errors,
        typed_version=typed if "version" in wrong else "",
    )


def _typed_policy(fields: Mapping[str, str], column: str) -> str | None:
    """What the steward chose for values outside `column`'s bounds, if the form sent a valid
    choice beside bounds they typed: a form refused for another field shows it again, not the
    draft's default. With both bounds empty the select showed the default of a column without
    bounds, not a choice: the draft's own policy stands (a fresh private guess clips)."""
    if not (
        fields.get(f"lower__{column}", "").strip() or fields.get(f"upper__{column}", "").strip()
    ):
        return None
    policy = fields.get(f"policy__{column}")
    return policy if policy in ("clip", "refuse") else None


def _shared_row(
    name: str,
    column: Column | None,
    mapping: ImportMapping | None,
    fields: Mapping[str, str],
    wrong: set[str],
) -> dict[str, Any]:
    """A shared codebook's column on the review form: the file's column it is read from and
    the file's codes recoded onto its levels (both the steward may change)."""
    if column is None or column.role == "unit_key":
        return {}
    entry = mapping.columns.get(name) if mapping is not None else None
    local = entry.column if entry is not None else name if column.collected else ""
    recode = ", ".join(f"{v}:{lv or ''}" for v, lv in entry.levels.items()) if entry else ""
    if f"recode__{name}" in wrong:
        recode = fields[f"recode__{name}"]  # not read (its error is beside it): kept as typed
    return {"shared": True, "local": local, "recode": recode}


def publish_draft(
    *, settings: NodeSettings, view: DraftView, import_file: bool, by: str
) -> ImportOutcome | None:
    """Publish the reviewed draft (a new contract version), then, if asked, import the staged
    file under it: whole or nothing, as on the command line. The upload is deleted after."""
    contract = view.draft.contract
    mapping = view.draft.mapping
    staged = uploads.find(settings.home, view.token)
    if not import_file:
        datasets.publish_contract(
            home=settings.home, contract=contract, settings=settings, by=by, mapping=mapping
        )
        uploads.discard(settings.home, view.token)
        return None
    outcome = import_staged(
        settings=settings,
        staged=staged,
        dataset=view.dataset,
        options=view.options,
        check_only=False,
        by=by,
        contract=contract,
        mapping=mapping,
    )
    if outcome.version is not None:
        uploads.discard(settings.home, view.token)
    return outcome


def contract(*, settings: NodeSettings, name: str, version: int) -> DatasetContract:
    return datasets.get_contract(home=settings.home, name=name, version=version)


# --- agreements ----------------------------------------------------------------------------------


def agreement_list(*, settings: NodeSettings) -> list[AgreementSummary]:
    newest: dict[str, AgreementRecord] = {}
    for record in agreements.list_agreements(home=settings.home, settings=settings):
        newest[record.agreement_id] = record  # listed by id, then version
    budgets = {
        b.agreement_id: b for b in ledger.budget_report(home=settings.home, settings=settings)
    }
    return [
        AgreementSummary(
            agreement_id=r.agreement_id,
            title=r.terms.title,
            version=r.version,
            status=r.status,
            signed_at=r.signed_at,
            budget=budgets.get(r.agreement_id),
        )
        for r in newest.values()
    ]


def agreement_detail(*, settings: NodeSettings, agreement_id: str) -> AgreementDetail:
    records = agreements.show(home=settings.home, agreement_id=agreement_id, settings=settings)
    budget = ledger.budget_detail(home=settings.home, agreement_id=agreement_id, settings=settings)
    newest = records[-1]
    return AgreementDetail(
        agreement_id=agreement_id,
        status=newest.status,
        records=records,
        terms=newest.terms,
        budget=budget,
        chart=budget_chart(budget, first_signed=records[0].signed_at),
        decisions=decisions(settings=settings, limit=20, agreement_id=agreement_id),
        labels=agreements.column_labels(home=settings.home, terms=newest.terms),
    )


def parse_agreement(document: str) -> SignedAgreement:
    """A hub-signed agreement version from the text a steward pasted or uploaded."""
    if not document.strip():
        raise FormInvalid("paste or upload the agreement file the hub sent (JSON)")
    if len(document.encode()) > MAX_AGREEMENT_BYTES:
        raise FormInvalid("the agreement file is too large")
    try:
        return SignedAgreement.model_validate_json(document)
    except ValidationError as exc:
        raise FormInvalid("the text is not a signed agreement file from the hub") from exc


def review(*, settings: NodeSettings, agreement: SignedAgreement) -> Review:
    preview = agreements.preview(home=settings.home, agreement=agreement, settings=settings)
    return Review(
        preview=preview,
        agreement=agreement,
        document=agreement.model_dump_json(),
        labels=agreements.column_labels(home=settings.home, terms=agreement.terms),
    )


def fetch_for_review(*, settings: NodeSettings, agreement_id: str) -> Review:
    agreement = agreements.fetch_from_hub(home=settings.home, agreement_id=agreement_id)
    return review(settings=settings, agreement=agreement)


def sign(*, settings: NodeSettings, agreement: SignedAgreement) -> tuple[str, str]:
    """Sign, hand the signature to the hub at once; the agreement id and what to tell the
    steward: `signed` (the hub has it), `signed_refused` or `signed_pending` (retried)."""
    outcome = agreements.sign_and_deliver(
        home=settings.home, agreement=agreement, settings=settings
    )
    report = outcome.report
    done = "signed" if report.sent else "signed_refused" if report.refused else "signed_pending"
    return agreement.terms.agreement_id, done


def budget_anchor(rho: float | Decimal) -> Anchor:
    """What a spend of `rho` means for one person (the wording is in the templates)."""
    return anchor(rho)


def exact_rho(rho: float | Decimal) -> Decimal:
    return exact.rho(rho)


def inclusive_days(terms: AgreementTerms) -> tuple[date, date]:
    """First and last UTC day in force, both included."""
    return validity_days(terms)


def column_text(name: str, labels: Mapping[str, str]) -> str:
    return labelled(name, labels)


def change_status(
    *, settings: NodeSettings, agreement_id: str, action: str, reason: str
) -> StatusOutcome:
    """Suspend, resume or revoke at once; then tell the hub, best effort (as the API does)."""
    if action not in STATUS_ACTIONS:
        raise FormInvalid("unknown action")
    return agreements.change_status_and_report(
        home=settings.home,
        agreement_id=agreement_id,
        action=cast(agreements.StatusAction, action),
        settings=settings,
        reason=reason,
    )


def one_person_chance(terms: AgreementTerms) -> str:
    """How often a one-person cell passes the minimum cell size at the per-query cap (the rule
    is judged on a noisy count), as a percentage for the terms page."""
    chance = one_person_release_chance(
        rho=terms.rho_per_query_max, min_cell_size=terms.min_cell_size
    )
    return "< 0.01%" if chance < 1e-4 else f"{100 * chance:.2g}%"


def purpose_text(terms: AgreementTerms) -> str | None:
    """The coded purpose in English words (no translation: the code itself is shown too)."""
    return PURPOSE_CODES.get(terms.purpose_code)


# --- budget chart --------------------------------------------------------------------------------

CHART_WIDTH = 640
CHART_HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 36


def budget_chart(
    detail: BudgetDetail, *, first_signed: datetime, now: datetime | None = None
) -> BudgetChart:
    """Cumulative rho spent in the current budget period over time, against the budget."""
    line = detail.line
    moment = now or _now()
    start = line.period_start or first_signed
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    charges = [c for c in detail.charges if c.period == line.period]
    if charges:
        start = min(start, charges[0].charged_at)
    end = max(moment, charges[-1].charged_at if charges else moment)
    if end <= start:
        end = start + timedelta(hours=1)
    top = max(line.rho_budget, line.rho_spent) or Decimal(1)
    plot_w = CHART_WIDTH - _LEFT - _RIGHT
    plot_h = CHART_HEIGHT - _TOP - _BOTTOM

    def x(at: datetime) -> float:
        return round(_LEFT + plot_w * (at - start) / (end - start), 1)

    def y(rho: Decimal) -> float:
        # Drawing only: the amounts shown beside the chart stay exact.
        return round(_TOP + plot_h * (1 - float(rho) / float(top)), 1)

    spent = exact.ZERO
    steps = [f"M{x(start)},{y(exact.ZERO)}"]
    points = []
    for charge in charges:
        steps.append(f"H{x(charge.charged_at)}")
        spent = exact.add(spent, charge.rho)
        steps.append(f"V{y(spent)}")
        points.append(
            ChartPoint(
                at=charge.charged_at,
                query_id=charge.query_id,
                rho=charge.rho,
                spent=spent,
                remaining=exact.remaining(line.rho_budget, spent),
            )
        )
    steps.append(f"H{x(end)}")
    return BudgetChart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        path=" ".join(steps),
        budget_y=y(line.rho_budget),
        rho_budget=line.rho_budget,
        rho_spent=line.rho_spent,
        start=start,
        end=end,
        points=points,
        ticks=[(y(top * f), top * f) for f in (Decimal(0), Decimal("0.5"), Decimal(1))],
    )


# --- decisions -----------------------------------------------------------------------------------


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _decision(entry: AuditEntry, labels: Mapping[str, str]) -> Decision:
    details = entry.details
    code = str(details.get("code", ""))
    version = details.get("agreement_version")
    rho = details.get("rho")
    column = details.get("column")
    dataset = details.get("dataset")
    organisation = details.get("organisation")
    return Decision(
        seq=entry.seq,
        at=entry.at,
        query_id=entry.object.removeprefix("query:"),
        agreement_id=details.get("agreement_id"),
        version=version if isinstance(version, int) else None,
        code=code,
        accepted=code in ("accepted", "stored_release"),
        measure=details.get("measure"),
        group_by=_strings(details.get("group_by")),
        column=str(column) if column else None,
        dataset=str(dataset) if dataset else None,
        filters=_strings(details.get("filter_columns")),
        organisation=str(organisation) if organisation else None,
        rho=exact.rho(rho) if isinstance(rho, (int, float, str)) and rho != "" else None,
        labels=labels,
    )


def _labels(settings: NodeSettings) -> dict[str, str]:
    """Column labels of every dataset's newest contract here (name -> label)."""
    labels: dict[str, str] = {}
    for name in sorted({v.name for v in datasets.list_versions(home=settings.home)}):
        try:
            contract = datasets.get_contract(home=settings.home, name=name)
        except DatasetError:
            continue
        for column in contract.columns:
            if column.title:
                labels.setdefault(column.name, column.title)
    return labels


def _recent(*, settings: NodeSettings, agreement_id: str | None) -> Iterator[Decision]:
    """Audited decisions on requests of the last RECENT_DAYS, oldest first."""
    flt = AuditFilter(
        action="decision",
        agreement_id=agreement_id,
        since=_now() - timedelta(days=RECENT_DAYS),
    )
    labels = _labels(settings)
    for entry in audit.iter_entries(database_url=settings.db_url, flt=flt):
        yield _decision(entry, labels)


OUTCOMES = ("accepted", "refused")


def decisions(
    *,
    settings: NodeSettings,
    limit: int = 50,
    agreement_id: str | None = None,
    organisation: str | None = None,
    outcome: str | None = None,
) -> list[Decision]:
    """The newest audited decisions on requests, newest first (codes and names, no values),
    of one agreement, one requesting organisation, accepted or refused, as asked."""
    wanted = (
        d
        for d in _recent(settings=settings, agreement_id=agreement_id)
        if (organisation is None or d.organisation == organisation)
        and (outcome is None or d.accepted == (outcome == "accepted"))
    )
    newest = deque(wanted, maxlen=limit)
    return list(reversed(newest))


def organisations(*, settings: NodeSettings) -> list[str]:
    """The organisations that asked questions here recently (for the requests filter)."""
    return sorted(
        {d.organisation for d in _recent(settings=settings, agreement_id=None) if d.organisation}
    )
