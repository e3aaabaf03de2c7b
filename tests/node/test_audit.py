"""The node's audit chain: events are recorded, the chain verifies, an edit is detected."""

from sqlalchemy import update

from node.audit.models import AuditRow
from node.audit.service import entries, verify_chain
from node.db import transaction
from tests.node.conftest import Node


def test_chain_records_events_and_detects_tampering(node: Node) -> None:
    url = node.settings.db_url
    assert node.post(node.request()).status_code == 200
    assert node.post(node.request(node_id="elsewhere")).status_code == 403
    actions = [e.action for e in entries(database_url=url)]
    assert actions[:2] == ["dataset_imported", "agreement_signed"]
    assert {"request_received", "decision", "budget_charged", "release_stored"} <= set(actions)
    codes = [e.details.get("code") for e in entries(database_url=url) if e.action == "decision"]
    assert codes == ["accepted", "wrong_node"]
    assert verify_chain(database_url=url) is None

    with transaction(url) as session:
        session.execute(update(AuditRow).where(AuditRow.seq == 3).values(details='{"rho": 0}'))
    assert verify_chain(database_url=url) == 3
