"""Automatic checkpoints: signed after whichever append makes one due, published in background.

Every path that writes the chain — queries pushed or pulled, secure aggregation, steward
actions, imports, the command line — appends through `service.LOG`, which calls
`note_append` once `enable` has hooked it in. Each sequence number that is a multiple of
`NODE_AUDIT_CHECKPOINT_EVERY` is a due point, signed once: right after the transaction
that reached it commits (a few milliseconds, once per that many entries), or by whichever
signer takes the chain's lock first when several fell due meanwhile. One background thread
per database sends the pending checkpoints to the pinned hub, so nothing waits on it. A
process turns this on for its database with `enable` (the node app, `sauti node pull`,
every `sauti node` command); where nobody did (tools, most tests), appends sign nothing.
"""

import logging
import threading
from dataclasses import dataclass, field

import httpx

from contracts.v1.audit import AuditCheckpoint
from node.audit import service
from node.audit.exceptions import CheckpointNotPublished
from node.db import DATABASE_URL, SessionLike, after_commit
from node.home import load_identity
from node.settings import NodeSettings

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Checkpointer:
    """The automatic checkpoints of one database, as this process sees them."""

    settings: NodeSettings
    transport: httpx.BaseTransport | None = None
    # The sequence number at which the next checkpoint falls due (None: not read yet).
    next_due: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _publishing: bool = False
    _again: bool = False
    _thread: threading.Thread | None = None

    def note(self, session: SessionLike, head: int) -> None:
        every = self.settings.audit_checkpoint_every
        if self.next_due is None:
            self.next_due = service.next_due_after(service.latest_checkpoint_seq(session), every)
        if head >= self.next_due:
            after_commit(session, self.sign)

    def sign(self) -> None:
        """After the commit that made a checkpoint due: sign every due point not signed yet
        (those whose trigger found another transaction holding the lock included), publish
        in background."""
        every = self.settings.audit_checkpoint_every
        try:
            made, decided_at = service.checkpoint_if_due(
                home=self.settings.home, settings=self.settings
            )
        except Exception as exc:
            # The transaction it follows has committed: log (no traceback) and retry later;
            # the next signer signs the due points this one missed.
            log.warning("audit checkpoint not signed: %s", type(exc).__name__)
            self.next_due = (self.next_due or 0) + every
            return
        # Only a hint that spares appends a transaction each: every due point up to
        # `decided_at` is signed, so a later (or racing, older) value is never past one.
        self.next_due = service.next_due_after(decided_at, every)
        if made:
            self.publish_soon()

    def publish_soon(self) -> None:
        """Send pending checkpoints to the hub from a background thread (one at a time)."""
        with self._lock:
            if self._publishing:
                self._again = True
                return
            self._publishing = True
            self._thread = threading.Thread(
                target=self._publish, name="sauti-audit-checkpoints", daemon=False
            )
            self._thread.start()

    def wait(self, timeout: float = 30.0) -> None:
        """Until the background publication in progress has finished (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _publish(self) -> None:

        while True:
            try:
                if load_identity(self.settings.home).hub_url is not None:
                    service.publish_pending(
                        home=self.settings.home, settings=self.settings, transport=self.transport
                    )
            except CheckpointNotPublished as exc:
                log.warning("audit checkpoint not published: %s", exc.message)
            except Exception as exc:
                # A background thread must not die loudly: the next checkpoint retries.
                log.warning("audit checkpoint not published: %s", type(exc).__name__)
            with self._lock:
                if not self._again:
                    self._publishing = False
                    return
                self._again = False


_checkpointers: dict[str, Checkpointer] = {}
_registry_lock = threading.Lock()


def enable(
    settings: NodeSettings, *, transport: httpx.BaseTransport | None = None
) -> Checkpointer | None:
    """Checkpoint this node's database automatically in this process (None: turned off by
    `audit_checkpoint_every` = 0). Calling it again with other settings or another
    transport replaces them."""
    url = settings.db_url
    service.LOG.after_append = _note_append
    with _registry_lock:
        if settings.audit_checkpoint_every <= 0:
            _checkpointers.pop(url, None)
            return None
        found = _checkpointers.get(url)
        if found is not None and found.settings == settings and found.transport is transport:
            return found
        made = Checkpointer(settings=settings, transport=transport)
        _checkpointers[url] = made
        return made


def disable(settings: NodeSettings) -> None:
    with _registry_lock:
        _checkpointers.pop(settings.db_url, None)


def checkpointer(settings: NodeSettings) -> Checkpointer | None:
    return _checkpointers.get(settings.db_url)


def sign_now(settings: NodeSettings) -> AuditCheckpoint:
    """A checkpoint on request (the steward's route): signed now, sent in the background."""
    made = service.make_checkpoint(home=settings.home, settings=settings)
    found = checkpointer(settings)
    if found is not None:
        found.publish_soon()
    return made


def note_append(session: SessionLike, *, head: int) -> None:
    """Called by every append with the head it moved to, inside its transaction."""
    url = session.info.get(DATABASE_URL)
    found = _checkpointers.get(url) if isinstance(url, str) else None
    if found is not None:
        found.note(session, head)


def _note_append(session: SessionLike, head: int) -> None:
    note_append(session, head=head)
