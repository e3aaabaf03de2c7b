"""The auditor page's search of the hub's log, on SQLite and PostgreSQL: newest first,
counted, paged by offset, substrings taken literally, a day range, and the actions listed
(remembered per database, read again when the log is another one)."""

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.audit.models import AuditHead, AuditRow
from runtime.audit_log import EntrySearch


def _fill(session: Session) -> None:
    for i in range(12):
        audit.append(
            session=session,
            actor="user:a%b" if i % 3 == 0 else "user:axb",
            action="query.submitted" if i % 2 else "auth.login",
            object=f"query:q_{i}",
        )
    session.commit()


def test_newest_first_counted_and_paged(session: Session) -> None:
    _fill(session)
    first, total = audit.search_page(session=session, search=EntrySearch(), limit=5)
    assert total == 12
    assert [e.seq for e in first] == [12, 11, 10, 9, 8]
    last, _ = audit.search_page(session=session, search=EntrySearch(), offset=10, limit=5)
    assert [e.seq for e in last] == [2, 1]
    beyond, total = audit.search_page(session=session, search=EntrySearch(), offset=50, limit=5)
    assert (beyond, total) == ([], 12)


def test_conditions_combine_and_wildcards_are_literal(session: Session) -> None:
    _fill(session)
    percent, total = audit.search_page(
        session=session, search=EntrySearch(actor_contains="a%b"), limit=50
    )
    assert total == 4
    assert {e.actor for e in percent} == {"user:a%b"}
    underscore, total = audit.search_page(
        session=session, search=EntrySearch(object_contains="q_1"), limit=50
    )
    assert sorted(e.object for e in underscore) == ["query:q_1", "query:q_10", "query:q_11"]
    both, total = audit.search_page(
        session=session,
        search=EntrySearch(action="query.submitted", actor_contains="a%b"),
        limit=50,
    )
    assert [e.object for e in both] == ["query:q_9", "query:q_3"]
    exact, total = audit.search_page(
        session=session, search=EntrySearch(object_is="query:q_1"), limit=50
    )
    assert [e.object for e in exact] == ["query:q_1"]
    assert audit.actions(session=session) == ["auth.login", "query.submitted"]
    assert all(EntrySearch(actor_contains="a%b").matches(e) for e in percent)


def test_a_day_range(session: Session) -> None:
    _fill(session)
    written, _ = audit.search_page(session=session, search=EntrySearch(), limit=12)
    day = timedelta(days=1)
    first = written[-1].at.replace(hour=0, minute=0, second=0, microsecond=0)
    end = written[0].at.replace(hour=0, minute=0, second=0, microsecond=0) + day
    _, inside = audit.search_page(
        session=session, search=EntrySearch(since=first, until=end), limit=1
    )
    _, after = audit.search_page(session=session, search=EntrySearch(since=end), limit=1)
    _, before = audit.search_page(session=session, search=EntrySearch(until=first), limit=1)
    assert (inside, after, before) == (12, 0, 0)


def test_actions_follow_the_log_they_were_read_from(session: Session) -> None:
    _fill(session)
    assert audit.actions(session=session) == ["auth.login", "query.submitted"]
    audit.append(session=session, actor="user:x", action="agreement.signed", object="x")
    session.commit()
    assert audit.actions(session=session) == ["agreement.signed", "auth.login", "query.submitted"]
    # Another log at the same address (a database recreated): read again, not remembered.
    session.execute(delete(AuditRow))
    session.execute(delete(AuditHead))
    session.commit()
    for _ in range(14):
        audit.append(session=session, actor="user:y", action="node.registered", object="n")
    session.commit()
    assert audit.actions(session=session) == ["node.registered"]
