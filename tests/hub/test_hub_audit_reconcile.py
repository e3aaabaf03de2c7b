"""Reconciliation of hub and node logs from their exports, and the `sauti audit` commands."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from contracts import signing
from contracts.v1.audit import (
    GENESIS,
    AuditCheckpoint,
    AuditEntry,
    AuditExportHeader,
    BudgetState,
    next_entry,
)
from hub.audit.reconcile import AuditLog, parse_export, reconcile
from sauti.cli import app

NODE = "ke-a"
KEY = signing.generate_key()


def _log(events: list[tuple[str, str, dict[str, Any]]]) -> list[AuditEntry]:
    chain: list[AuditEntry] = []
    seq, prev = 0, GENESIS
    for action, obj, details in events:
        entry = next_entry(
            prev_seq=seq,
            prev_hash=prev,
            at=datetime.now(UTC),
            actor="x",
            action=action,
            object=obj,
            details=details,
        )
        chain.append(entry)
        seq, prev = entry.seq, entry.hash
    return chain


def _export(side: str, owner: str, chain: list[AuditEntry], **extra: Any) -> AuditLog:
    header = AuditExportHeader(
        side=side,  # type: ignore[arg-type]
        owner_id=owner,
        public_jwk=signing.public_jwk(KEY),
        exported_at=datetime.now(UTC),
        head_seq=chain[-1].seq if chain else 0,
        head_hash=chain[-1].hash if chain else GENESIS,
        **extra,
    )
    return AuditLog(header, chain)


def _hub(queries: dict[str, str]) -> AuditLog:
    """`queries`: query id -> the hub's recorded outcome at the node."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    for qid, outcome in queries.items():
        events.append(
            (
                "query.submitted",
                f"query:{qid}",
                {"agreement": "mou:v1", "nodes": [NODE], "rho": 0.1},
            )
        )
        events.append(("query.node_outcome", f"query:{qid}", {"node": NODE, "outcome": outcome}))
    return _export("hub", "test-hub", _log(events))


def _node_events(
    qid: str, *, charges: int = 1, release: bool = True
) -> list[tuple[str, str, dict[str, Any]]]:
    base = {"query_id": qid, "agreement_id": "mou"}
    events = [
        ("request_received", f"query:{qid}", base),
        ("decision", f"query:{qid}", {**base, "code": "accepted"}),
    ]
    events += [("budget_charged", f"query:{qid}", {**base, "rho": 0.1})] * charges
    if release:
        events.append(("release_stored", f"query:{qid}", base))
    return events


def _node(
    events: list[tuple[str, str, dict[str, Any]]], spent: float | Decimal, queries: int
) -> AuditLog:
    return _export(
        "node",
        NODE,
        _log(events),
        budgets=(BudgetState(agreement_id="mou", rho_spent=spent, queries=queries),),
    )


def _kinds(hub: AuditLog, node: AuditLog) -> list[tuple[str, str | None]]:
    return [(d.kind, d.query_id) for d in reconcile(hub, [node]).differences]


def test_matching_logs_reconcile() -> None:
    hub = _hub({"q1": "ok", "q2": "ok"})
    node = _node(_node_events("q1") + _node_events("q2"), spent=0.2, queries=2)
    result = reconcile(hub, [node])
    assert result.differences == []
    assert (result.hub_queries, result.node_releases) == (2, 2)


def test_missing_release_is_found() -> None:
    hub = _hub({"q1": "ok", "q2": "ok"})
    node = _node(_node_events("q1") + _node_events("q2", release=False), spent=0.2, queries=2)
    assert _kinds(hub, node) == [("hub_result_without_node_release", "q2")]


def test_extra_charge_and_budget_mismatch_are_found() -> None:
    hub = _hub({"q1": "ok"})
    node = _node(_node_events("q1", charges=2), spent=0.1, queries=1)
    assert _kinds(hub, node) == [("extra_charge", "q1"), ("budget_mismatch", None)]


def test_secure_attempts_are_charged_once_each() -> None:
    secure = {"aggregation": "secure"}
    events: list[tuple[str, str, dict[str, Any]]] = [
        ("query.submitted", "query:q1", {"agreement": "mou:v1", "nodes": [NODE], "rho": 0.1}),
        (
            "query.node_outcome",
            "query:q1",
            {"node": NODE, "outcome": "ok", **secure, "attempts": 2},
        ),
    ]
    hub = _export("hub", "test-hub", _log(events))
    base = {"query_id": "q1", "agreement_id": "mou", **secure}
    node_events = [
        ("budget_charged", "query:q1", {**base, "rho": 0.1, "attempt": 1}),
        ("release_stored", "query:q1", base),
        ("budget_charged", "query:q1", {**base, "rho": 0.1, "attempt": 2}),
        ("release_stored", "query:q1", base),
    ]
    assert _kinds(hub, _node(node_events, spent=0.2, queries=2)) == []
    third = [*node_events, ("budget_charged", "query:q1", {**base, "rho": 0.1, "attempt": 3})]
    assert _kinds(hub, _node(third, spent=0.3, queries=3)) == [("extra_charge", "q1")]
    twice = [*node_events, ("budget_charged", "query:q1", {**base, "rho": 0.1, "attempt": 2})]
    assert _kinds(hub, _node(twice, spent=0.3, queries=3)) == [("extra_charge", "q1")]


def test_a_charge_the_node_returned_counts_as_none() -> None:
    hub = _hub({"q1": "failed"})
    base = {"query_id": "q1", "agreement_id": "mou"}
    failed = [
        *_node_events("q1", release=False),
        ("release_failed", "query:q1", {**base, "noise_drawn": False}),
        ("budget_released", "query:q1", {**base, "rho": 0.1}),
    ]
    assert _kinds(hub, _node(failed, spent=0.0, queries=0)) == []
    # Retried and answered: one charge in all.
    retried = failed + _node_events("q1")
    assert _kinds(hub, _node(retried, spent=0.1, queries=1)) == []


def test_a_secure_query_falling_back_reconciles_under_its_derived_id() -> None:
    secure = {"aggregation": "secure"}
    hub = _export(
        "hub",
        "test-hub",
        _log(
            [
                (
                    "query.submitted",
                    "query:q1",
                    {"agreement": "mou:v1", "nodes": [NODE], "rho": 0.1},
                ),
                (
                    "query.node_outcome",
                    "query:q1",
                    {"node": "ke-b", "outcome": "failed", **secure, "attempts": 1},
                ),
                (
                    "query.per_node_fallback",
                    "query:q1",
                    {"node": NODE, "node_query_id": "q1f", "rho": 0.1},
                ),
                ("query.node_outcome", "query:q1", {"node": NODE, "outcome": "ok"}),
            ]
        ),
    )
    attempt = {"query_id": "q1", "agreement_id": "mou", **secure, "attempt": 1}
    node = [("budget_charged", "query:q1", {**attempt, "rho": 0.1}), *_node_events("q1f")]
    assert _kinds(hub, _node(node, spent=0.2, queries=2)) == []
    # Without the hub's record of the derived id, the plain release is unexplained.
    bare = AuditLog(hub.header, [e for e in hub.entries if e.action != "query.per_node_fallback"])
    assert ("release_without_hub_query", "q1f") in _kinds(bare, _node(node, spent=0.2, queries=2))


def test_query_answered_without_hub_record_is_found() -> None:
    hub = _hub({"q1": "ok"})
    node = _node(_node_events("q1") + _node_events("q9"), spent=0.2, queries=2)
    assert _kinds(hub, node) == [
        ("charge_without_hub_query", "q9"),
        ("release_without_hub_query", "q9"),
    ]


def test_a_node_log_rewritten_after_its_checkpoint_is_found() -> None:
    events = _node_events("q1")
    original = _log(events)
    signed = signing.sign(
        AuditCheckpoint(node_id=NODE, seq=4, hash=original[3].hash, signed_at=datetime.now(UTC)),
        KEY,
    )
    hub = _hub({"q1": "ok"})
    hub = AuditLog(hub.header.model_copy(update={"checkpoints": (signed,)}), hub.entries)
    rewritten = _node(
        [
            (a, o, {**d, "code": "rewritten"}) if a == "decision" else (a, o, d)
            for a, o, d in events
        ],
        spent=0.1,
        queries=1,
    )
    result = reconcile(hub, [rewritten])
    assert [d.kind for d in result.differences] == ["chain_invalid"]
    problem = result.verifications[1].problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("checkpoint_mismatch", 4)


def _write(path: Path, log: AuditLog) -> Path:
    lines = [log.header.model_dump_json(), *(e.model_dump_json() for e in log.entries)]
    path.write_text("\n".join(lines) + "\n")
    assert parse_export(path.read_text().splitlines()).header == log.header
    return path


def test_cli_reconcile_and_verify_exports(tmp_path: Path) -> None:
    runner = CliRunner()
    hub = _write(tmp_path / "hub.jsonl", _hub({"q1": "ok", "q2": "ok"}))
    good = _write(tmp_path / "good.jsonl", _node(_node_events("q1") + _node_events("q2"), 0.2, 2))
    bad = _write(tmp_path / "bad.jsonl", _node(_node_events("q1"), 0.1, 1))
    ok = runner.invoke(app, ["audit", "reconcile", "--hub-export", str(hub), str(good)])
    assert ok.exit_code == 0, ok.output
    assert "reconcile" in ok.output
    found = runner.invoke(app, ["audit", "reconcile", "--hub-export", str(hub), str(bad)])
    assert found.exit_code == 1
    assert "hub_result_without_node_release" in found.output
    assert runner.invoke(app, ["audit", "verify", "--export", str(good)]).exit_code == 0
    # Bad input: not an export, a missing file, a home that is neither side.
    (tmp_path / "junk.jsonl").write_text('{"hello": 1}\n')
    junk = runner.invoke(app, ["audit", "verify", "--export", str(tmp_path / "junk.jsonl")])
    assert junk.exit_code == 1
    assert "invalid_export" in junk.output
    missing = runner.invoke(app, ["audit", "verify", "--export", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    nowhere = runner.invoke(app, ["audit", "verify", "--home", str(tmp_path)])
    assert nowhere.exit_code == 1
    assert "neither a node home" in nowhere.output


def test_budgets_and_charges_are_compared_exactly() -> None:
    """Three charges of 0.1 fill 0.3 exactly; a ledger left at the float sum does not."""
    hub = _hub({"q1": "ok", "q2": "ok", "q3": "ok"})
    events = _node_events("q1") + _node_events("q2") + _node_events("q3")
    assert _kinds(hub, _node(events, spent=Decimal("0.3"), queries=3)) == []
    drifted = reconcile(hub, [_node(events, spent=0.1 + 0.1 + 0.1, queries=3)]).differences
    assert [d.kind for d in drifted] == ["budget_mismatch"]
    assert drifted[0].message == (
        "the node's ledger says rho 0.30000000000000004 spent, the charges in its log add up to 0.3"
    )


def _checkpoint(seq: int, entries: list[AuditEntry], signed_at: datetime) -> str:
    payload = AuditCheckpoint(
        node_id=NODE, seq=seq, hash=entries[seq - 1].hash, signed_at=signed_at
    )
    return signing.sign(payload, KEY)


def test_a_node_whose_log_runs_far_past_the_hubs_checkpoints_is_flagged() -> None:
    qids = [f"q{i}" for i in range(60)]  # 4 entries each: 240 entries
    events = [e for q in qids for e in _node_events(q)]
    node = _node(events, spent=Decimal("6"), queries=60)
    hub = _hub(dict.fromkeys(qids, "ok"))
    flagged = reconcile(hub, [node]).differences
    assert [(d.kind, d.node_id) for d in flagged] == [("checkpoints_overdue", NODE)]
    assert "no signed checkpoint for the last 240 entries" in flagged[0].message
    assert reconcile(hub, [node], overdue_entries=0).differences == []
    held = _checkpoint(100, node.entries, datetime.now(UTC))
    hub = AuditLog(hub.header.model_copy(update={"checkpoints": (held,)}), hub.entries)
    assert reconcile(hub, [node]).differences == []  # 140 entries after it: within 200


def test_checkpoints_newer_than_a_node_export_are_not_taken_for_deletions() -> None:
    events = _node_events("q1")
    node = _node(events, spent=Decimal("0.1"), queries=1)
    longer = _log([*events, *_node_events("q2")])
    # Signed after the export was taken, for an entry it does not hold: not comparable yet.
    later = node.header.exported_at + timedelta(seconds=5)
    hub = _hub({"q1": "ok"})
    hub_later = hub.header.model_copy(update={"checkpoints": (_checkpoint(6, longer, later),)})
    assert reconcile(AuditLog(hub_later, hub.entries), [node]).differences == []
    # Signed before the export for an entry it no longer holds: its tail was deleted.
    earlier = node.header.exported_at - timedelta(seconds=5)
    hub_before = hub.header.model_copy(update={"checkpoints": (_checkpoint(6, longer, earlier),)})
    result = reconcile(AuditLog(hub_before, hub.entries), [node])
    assert [d.kind for d in result.differences] == ["chain_invalid"]
    problem = result.verifications[1].problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("checkpoint_mismatch", 6)
