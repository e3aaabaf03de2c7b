"""Node audit exports that agree with a hub's log, for the auditor's reconciliation pages.

Each node is given, in its own chain, exactly what the hub's log says it asked of and
combined from that node: a request, an accepted decision, one charge at the rho asked and a
stored release per answered query.
"""

import json
from datetime import UTC, datetime
from typing import Any

from contracts import signing
from contracts.v1.audit import GENESIS, AuditEntry, AuditExportHeader, next_entry

NODE_KEY = signing.generate_key()


def _chain(events: list[tuple[str, str, dict[str, Any]]]) -> list[AuditEntry]:
    chain: list[AuditEntry] = []
    seq, prev = 0, GENESIS
    for action, obj, details in events:
        entry = next_entry(
            prev_seq=seq,
            prev_hash=prev,
            at=datetime.now(UTC),
            actor="hub",
            action=action,
            object=obj,
            details=details,
        )
        chain.append(entry)
        seq, prev = entry.seq, entry.hash
    return chain


def node_exports(hub_jsonl: str) -> dict[str, bytes]:
    """One JSON Lines export per node the hub's log names, agreeing with that log."""
    entries = [json.loads(line) for line in hub_jsonl.splitlines()[1:] if line.strip()]
    asked: dict[tuple[str, str], tuple[str, float]] = {}
    events: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for e in entries:
        qid = e["object"].removeprefix("query:")
        if e["action"] == "query.submitted":
            agreement = str(e["details"].get("agreement", "")).split(":v", 1)[0]
            for node in e["details"].get("nodes", []):
                asked[(qid, node)] = (agreement, e["details"]["rho"])
                events.setdefault(node, [])
        elif e["action"] == "query.node_outcome" and e["details"].get("outcome") == "ok":
            node = e["details"]["node"]
            agreement, rho = asked[(qid, node)]
            base = {"query_id": qid, "agreement_id": agreement}
            events[node] += [
                ("request_received", f"query:{qid}", base),
                ("decision", f"query:{qid}", {**base, "code": "accepted"}),
                ("budget_charged", f"query:{qid}", {**base, "rho": rho}),
                ("release_stored", f"query:{qid}", base),
            ]
    out = {}
    for node, node_events in events.items():
        chain = _chain(node_events)
        header = AuditExportHeader(
            side="node",
            owner_id=node,
            public_jwk=signing.public_jwk(NODE_KEY),
            exported_at=datetime.now(UTC),
            head_seq=chain[-1].seq if chain else 0,
            head_hash=chain[-1].hash if chain else GENESIS,
        )
        lines = [header.model_dump_json(), *(c.model_dump_json() for c in chain)]
        out[node] = ("\n".join(lines) + "\n").encode()
    return out
