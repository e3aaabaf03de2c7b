"""View models of the auditor's pages: the log searched page by page, entries read as
labelled details with links, one query's and one agreement's record, reconciliation.

Problems with the search form are codes per field (`SearchForm.errors`): the page words them
in the reader's language, next to the field.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID

from sqlalchemy.orm import Session

from contracts.agreement_rules import Section, plain_language
from contracts.v1 import QueryResult
from contracts.v1.audit import AuditEntry, AuditFilter, AuditVerification
from hub.agreements import service as agreements
from hub.agreements.schemas import AgreementRead
from hub.audit import checkpoints
from hub.audit import service as audit
from hub.audit.reconcile import AuditLog, Reconciliation, parse_export, reconcile
from hub.audit.schemas import CheckpointRead, NodeCheckpointStatus
from hub.auth.schemas import User
from hub.home import HubIdentity
from hub.queries import service as queries
from hub.web.exceptions import FormInvalid
from runtime.audit_log import EntrySearch

PER_PAGE = 50
# A time written into details (deadlines, expiries): shown like every other time.
ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
# Entries of one query or agreement shown on its record page (newest first).
RECORD_ENTRIES = 200
SEARCH_FIELDS = ("actor", "action", "object", "since", "until", "page")
FIELD_LENGTH = {"actor": 200, "action": 100, "object": 300, "since": 10, "until": 10, "page": 20}
MAX_PAGE = 10**9


# --- details, readable ---------------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    """One labelled detail of an entry. `kind`: text, number, flag, time, list, group."""

    key: str
    kind: str = "text"
    text: str = ""
    number: float | None = None
    moment: datetime | None = None
    href: str | None = None
    items: tuple["Detail", ...] = ()


def query_href(query_id: str) -> str | None:
    try:
        return f"/audit/queries/{UUID(query_id)}"
    except ValueError:
        return None


def agreement_href(agreement_id: str) -> str:
    return f"/audit/agreements/{quote(agreement_id, safe='')}"


def search_href(**params: str) -> str:
    return "/audit?" + urlencode(params)


def object_href(obj: str) -> str | None:
    """The page of what an entry is about (a query, an agreement), if there is one."""
    kind, _, rest = obj.partition(":")
    if kind == "query":
        return query_href(rest)
    if kind == "agreement" and rest:
        return agreement_href(rest.split(":v", 1)[0])
    return None


def _link(key: str, value: str) -> str | None:
    if key in ("query_id", "node_query_id"):
        return query_href(value)
    if key == "agreement_id":
        return agreement_href(value)
    if key == "agreement":
        return agreement_href(value.split(":v", 1)[0])
    return None


def detail(key: str, value: Any) -> Detail:
    if isinstance(value, bool):
        return Detail(key=key, kind="flag", text="yes" if value else "no")
    if isinstance(value, int | float):
        return Detail(key=key, kind="number", number=value)
    if isinstance(value, dict):
        return Detail(key=key, kind="group", items=tuple(detail(k, v) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return Detail(key=key, kind="list", items=tuple(detail(key, v) for v in value))
    if value is None:
        return Detail(key=key, text="—")
    text = str(value)
    if ISO_MOMENT.match(text):
        try:
            return Detail(key=key, kind="time", moment=datetime.fromisoformat(text))
        except ValueError:
            pass
    return Detail(key=key, text=text, href=_link(key, text))


@dataclass(frozen=True)
class EntryView:
    entry: AuditEntry
    object_href: str | None
    actor_href: str
    details: tuple[Detail, ...]


def entry_view(entry: AuditEntry) -> EntryView:
    return EntryView(
        entry=entry,
        object_href=object_href(entry.object),
        actor_href=search_href(actor=entry.actor),
        details=tuple(detail(k, v) for k, v in sorted(entry.details.items())),
    )


# --- the search ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchView:
    values: dict[str, str]
    # field -> problem code (bad_date, range, unknown_action, bad_page, no_such_page)
    errors: dict[str, str]
    actions: tuple[str, ...]
    entries: tuple[EntryView, ...] = ()
    total: int = 0
    page: int = 1
    pages: int = 1
    export_query: str = ""

    @property
    def first(self) -> int:
        return (self.page - 1) * PER_PAGE + 1

    @property
    def last(self) -> int:
        return (self.page - 1) * PER_PAGE + len(self.entries)

    def page_href(self, page: int) -> str:
        shown = {k: v for k, v in self.values.items() if v and k != "page"}
        return "/audit?" + urlencode({**shown, "page": str(page)})


def _form_values(params: Mapping[str, str]) -> dict[str, str]:
    return {k: params.get(k, "").strip()[: FIELD_LENGTH[k]] for k in SEARCH_FIELDS}


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def _moment(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def parse_search(
    params: Mapping[str, str], *, actions: Sequence[str]
) -> tuple[dict[str, str], dict[str, str], EntrySearch, int]:
    """The form as typed, its problems by field, the search, and the page asked for."""
    values = _form_values(params)
    errors: dict[str, str] = {}
    days: dict[str, date | None] = {}
    for name in ("since", "until"):
        days[name] = _day(values[name]) if values[name] else None
        if values[name] and days[name] is None:
            errors[name] = "bad_date"
    since, until = days["since"], days["until"]
    if since is not None and until is not None and since > until:
        errors["until"] = "range"
    if values["action"] and values["action"] not in actions:
        errors["action"] = "unknown_action"
    page = 1
    if values["page"]:
        if values["page"].isdecimal() and 0 < int(values["page"]) < MAX_PAGE:
            page = int(values["page"])
        else:
            errors["page"] = "bad_page"
    search = EntrySearch(
        action=values["action"] or None,
        actor_contains=values["actor"] or None,
        object_contains=values["object"] or None,
        since=_moment(since) if since else None,
        # The To day is included: up to the start of the next day.
        until=_moment(until) + timedelta(days=1) if until else None,
    )
    return values, errors, search, page


def search_view(*, session: Session, params: Mapping[str, str]) -> SearchView:
    """One page of the log, newest first; a form with problems searches nothing."""
    actions = tuple(audit.actions(session=session))
    values, errors, search, page = parse_search(params, actions=actions)
    if errors:
        session.rollback()
        return SearchView(values=values, errors=errors, actions=actions)
    found, total = audit.search_page(
        session=session, search=search, offset=(page - 1) * PER_PAGE, limit=PER_PAGE
    )
    session.rollback()
    pages = max(1, -(-total // PER_PAGE))
    if page > pages:
        errors["page"] = "no_such_page"
    export = {k: v for k, v in values.items() if v and k != "page"}
    return SearchView(
        values=values,
        errors=errors,
        actions=actions,
        entries=tuple(entry_view(e) for e in found),
        total=total,
        page=page,
        pages=pages,
        export_query=urlencode(export),
    )


def export_search(params: Mapping[str, str], *, session: Session) -> EntrySearch:
    """The search an export repeats; a form with problems is refused (as on the page)."""
    actions = audit.actions(session=session)
    session.rollback()
    # Every page of the search is exported: the page asked for plays no part.
    wanted = {k: v for k, v in params.items() if k != "page"}
    _, errors, search, _ = parse_search(wanted, actions=actions)
    if errors:
        raise FormInvalid("check these fields: " + ", ".join(sorted(errors)))
    return search


def export_filter(search: EntrySearch) -> AuditFilter:
    """The part of a search the store filters by before the rest is matched entry by entry."""
    return AuditFilter(action=search.action, since=search.since, until=search.until)


# --- the chain -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainView:
    verification: AuditVerification
    checked_at: datetime
    checkpoints: list[CheckpointRead]
    status: list[NodeCheckpointStatus]


def checkpoint_status(*, session: Session, overdue_entries: int) -> list[NodeCheckpointStatus]:
    status = checkpoints.checkpoint_status(session=session, overdue_entries=overdue_entries)
    session.rollback()
    return status


def verify_chain(*, session: Session, identity: HubIdentity, overdue_entries: int) -> ChainView:
    """The hub chain's verification now, the node checkpoints it holds, and who is overdue."""
    session.rollback()  # a fresh transaction: verification reads without the write lock
    verification = audit.verify(session=session, identity=identity)
    held = audit.list_checkpoints(session=session)
    status = checkpoints.checkpoint_status(session=session, overdue_entries=overdue_entries)
    session.rollback()
    return ChainView(
        verification=verification,
        checked_at=datetime.now(UTC),
        checkpoints=held,
        status=status,
    )


# --- one query, one agreement --------------------------------------------------------------


@dataclass(frozen=True)
class QueryRecord:
    result: QueryResult
    analyst: str | None
    entries: tuple[EntryView, ...]
    total: int


def query_record(*, session: Session, query_id: UUID, user: User) -> QueryRecord:
    """What was asked, of whom, how each node answered, and every log entry about it."""
    result = queries.read_query(session=session, query_id=query_id, user=user)
    found, total = audit.search_page(
        session=session, search=EntrySearch(object_is=f"query:{query_id}"), limit=RECORD_ENTRIES
    )
    session.rollback()
    submitted = next((e for e in found if e.action == "query.submitted"), None)
    return QueryRecord(
        result=result,
        analyst=submitted.actor if submitted else None,
        entries=tuple(entry_view(e) for e in found),
        total=total,
    )


@dataclass(frozen=True)
class AgreementRecord:
    read: AgreementRead
    sections: tuple[Section, ...]
    entries: tuple[EntryView, ...]
    search_object: str


def agreement_record(*, session: Session, agreement_id: str, user: User) -> AgreementRecord:
    """The agreement's latest version in plain language, and the log entries naming it."""
    read = agreements.get_agreement(session=session, agreement_id=agreement_id, user=user)
    prefix = f"agreement:{read.agreement.terms.agreement_id}"
    found, _ = audit.search_page(
        session=session, search=EntrySearch(object_contains=prefix), limit=RECORD_ENTRIES
    )
    session.rollback()
    return AgreementRecord(
        read=read,
        sections=plain_language(read.agreement.terms),
        entries=tuple(
            entry_view(e) for e in found if e.object == prefix or e.object.startswith(prefix + ":v")
        ),
        search_object=prefix,
    )


# --- reconciliation ------------------------------------------------------------------------


class ReconcileRefused(FormInvalid):
    """`reason`: no_files | not_an_export (`file` names it) | hub_export."""

    def __init__(self, reason: str, *, file: str = "") -> None:
        super().__init__(f"cannot reconcile: {reason} {file}".strip())
        self.reason = reason
        self.file = file


@dataclass(frozen=True)
class ReconcileView:
    result: Reconciliation
    files: tuple[str, ...] = field(default=())

    @property
    def chains_intact(self) -> bool:
        return all(v.problem is None for v in self.result.verifications)


def reconcile_uploads(
    *,
    session: Session,
    identity: HubIdentity,
    uploads: Sequence[tuple[str, bytes]],
    overdue_entries: int,
) -> ReconcileView:
    """Reconcile the hub's whole log with the node exports an auditor uploaded."""
    if not uploads:
        raise ReconcileRefused("no_files")
    hub_log = parse_export(list(audit.export_jsonl(session=session, identity=identity)))
    session.rollback()
    nodes: list[AuditLog] = []
    for name, data in uploads:
        try:
            nodes.append(parse_export(data.decode("utf-8").splitlines()))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReconcileRefused("not_an_export", file=name) from exc
    try:
        result = reconcile(hub_log, nodes, overdue_entries=overdue_entries)
    except ValueError as exc:
        raise ReconcileRefused("hub_export") from exc
    return ReconcileView(result=result, files=tuple(name for name, _ in uploads))
