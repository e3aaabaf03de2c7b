"""Steward accounts (argon2 passwords, lockout, TOTP) and bearer tokens stored as SHA-256."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base
from runtime.credentials import AccountColumns
from runtime.db import UtcDateTime


class StewardAccount(AccountColumns, Base):
    """A person who governs this node; authenticated here, never by the hub."""

    __tablename__ = "steward_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(300))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class StewardToken(Base):
    """A script's API token (`sauti node token create`) or a login session's bearer token."""

    __tablename__ = "steward_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # "token" (made on the command line) or "session" (made by a password login).
    kind: Mapped[str] = mapped_column(String(10), default="token")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("steward_accounts.id"), nullable=True)
