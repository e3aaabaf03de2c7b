"""Read-only hub transactions never hold the writers up; batched audit appends chain."""

from sqlalchemy import select

from hub.audit import service as audit
from hub.audit.models import AuditRow
from hub.db import init_db, make_engine, read_only
from hub.settings import HubSettings


def test_a_reader_in_progress_does_not_block_a_writer(hub_settings: HubSettings) -> None:
    engine = make_engine(hub_settings.effective_database_url)
    try:
        sessions = init_db(engine)
        with sessions() as reader, sessions() as writer:
            before = read_only(reader).execute(select(AuditRow.seq)).all()
            # With the reader holding SQLite's write lock this would wait out the busy
            # timeout and fail; deferred, it only holds a snapshot.
            audit.append_many(
                session=writer,
                events=[
                    audit.Event(actor="hub", action="one", object="t"),
                    audit.Event(actor="hub", action="two", object="t", details={"rho": 0.5}),
                ],
            )
            writer.commit()
            assert len(reader.execute(select(AuditRow.seq)).all()) >= len(before)
            reader.rollback()
            audit.append(session=writer, actor="hub", action="three", object="t")
            writer.commit()
        with sessions() as session:
            assert audit.head(session=session)[0] == 3
            assert audit.verify_chain(session=session) is None
            actions = [e.action for e in audit.entries(session=session)]
            assert actions == ["one", "two", "three"]
    finally:
        engine.dispose()
