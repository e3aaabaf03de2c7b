"""The node registry (pinned keys, mode, status), enrollment tokens and seen node nonces."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from runtime.db import UtcDateTime


class Node(Base):
    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(3))
    # Empty for a pull node: it opens no port and the hub never calls it.
    url: Mapped[str] = mapped_column(String(500))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    kid: Mapped[str] = mapped_column(String(100))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    mode: Mapped[str] = mapped_column(String(10), default="push")
    status: Mapped[str] = mapped_column(String(20), default="active")
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Key rotation overlap: the replaced key still verifies releases until this moment, so
    # answers signed (and stored at the node) before the rotation are not lost.
    previous_jwk: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    previous_kid: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class NodeKey(Base):
    """Every key a node ever had, kept so things it signed before a rotation still verify.

    `valid_from`..`retired_at` is when the key was the node's current key (`valid_from` is
    None for a key whose start is unknown: migrated from before this history was kept);
    `valid_until` ends the overlap in which the hub still takes new messages it signed.
    """

    __tablename__ = "node_keys"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.node_id"), primary_key=True)
    kid: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class EnrollmentToken(Base):
    """A one-time enrollment token; only its SHA-256 is stored."""

    __tablename__ = "enrollment_tokens"

    token_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    node_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class NodeNonce(Base):
    """Nonces of node-signed messages seen within their freshness window (replay guard)."""

    __tablename__ = "node_nonces"

    node_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class NodeContract(Base):
    """One dataset contract version a node published, verified with the node's key.

    Contracts are public (codebook levels, labels, bounds, roles): the hub keeps each
    node's so it can offer levels and check a query before anything is sent.
    """

    __tablename__ = "node_contracts"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.node_id"), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(100))
    contract: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The key that signed the publication, and when it was signed and received.
    kid: Mapped[str] = mapped_column(String(100))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
