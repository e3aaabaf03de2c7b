"""Credentials both sides keep for their people: password, lockout and TOTP rules, bearer
secrets, the account columns that hold them, and the login API's bodies.

The hub's accounts and the node's steward accounts apply the same rules without importing
each other. The policy follows NIST SP 800-63B: a minimum length, a block list of common and
context words, no composition rules and no forced rotation.
"""

import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from runtime.db import UtcDateTime


class _Hashing:
    """The process's password hasher, and a hash of its own verified against when the
    account does not exist, so a wrong user name costs as much time as a wrong password and
    answers cannot be timed to find which names exist."""

    hasher: PasswordHasher
    dummy_hash: str

    def __init__(self, hasher: PasswordHasher) -> None:
        self.use(hasher)

    def use(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher
        self.dummy_hash = hasher.hash(secrets.token_urlsafe(16))


# argon2id with the library's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4).
_hashing = _Hashing(PasswordHasher())


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash, verify and judge rehashing with `hasher` from now on, in this process.

    For the test suite: its throwaway accounts use argon2id's cheapest parameters, since
    they guard nothing and no test measures the work factor; production keeps the default.
    """
    _hashing.use(hasher)


MAX_PASSWORD_LENGTH = 256
# The most common passwords of public breach corpora (a short list is enough: the length
# rule already excludes most of the rest) and words anyone would try against this product.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "password1234",
        "passwordpassword",
        "qwertyuiopas",
        "qwerty123456",
        "iloveyou1234",
        "letmeinletmein",
        "administrator",
        "changemechangeme",
        "welcome12345",
        "sautisautisauti",
        "lnob12345678",
        "000000000000",
        "111111111111",
        "abcdefghijkl",
        "correcthorsebatterystaple",
    }
)


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 12


def password_problems(password: str, *, username: str, policy: PasswordPolicy) -> list[str]:
    """What is wrong with `password` (empty when it is acceptable); names rules, not values."""
    problems: list[str] = []
    if len(password) < policy.min_length:
        problems.append(f"must be at least {policy.min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters")
    folded = password.casefold()
    if folded in COMMON_PASSWORDS or len(set(folded)) <= 2:
        problems.append("is a common or repetitive password")
    if username and username.casefold() in folded:
        problems.append("must not contain the user name")
    if password.strip(string.whitespace) != password:
        problems.append("must not start or end with spaces")
    return problems


def login_name(username: str) -> str:
    """The one normalisation of a login, for pages and APIs alike: the user name loses
    surrounding whitespace (a name never has any: autofill adds it); the password is taken
    exactly as typed (stripping it would make a page accept what the API refuses)."""
    return username.strip()


def hash_password(password: str) -> str:
    return _hashing.hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; with no hash (no account) still spends the same time."""
    try:
        matches = _hashing.hasher.verify(password_hash or _hashing.dummy_hash, password)
        return matches and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's defaults."""
    return _hashing.hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    lock_minutes: float = 15


def after_failure(
    *, failures: int, now: datetime, policy: LockoutPolicy
) -> tuple[int, datetime | None]:
    """The new failure count and, when it reaches the limit, when the lock ends."""
    failures += 1
    if failures >= policy.max_failures:
        return failures, now + timedelta(minutes=policy.lock_minutes)
    return failures, None


def is_locked(locked_until: datetime | None, *, now: datetime) -> bool:
    return locked_until is not None and locked_until > now


# --- TOTP (RFC 6238: 30 s steps, 6 digits, SHA-1, as every authenticator app expects) -----


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def totp_step(secret: str, code: str | None, *, now: datetime, last_step: int | None) -> int | None:
    """The time step `code` is valid for (±1 step of clock drift), or None if it is not.

    A step at or before `last_step` is refused, so an observed code cannot be replayed.
    """
    if not code or not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // totp.interval
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def totp_code(secret: str, *, now: datetime) -> str:
    """The code an authenticator app shows at `now` (for tests and the CLI's self-check)."""
    return pyotp.TOTP(secret).at(now)


# --- bearer secrets (API tokens, sessions) -----------------------------------------------


def new_secret(prefix: str = "") -> str:
    """A random 256-bit bearer secret, shown once; `prefix` marks what kind it is."""
    return prefix + secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """How a bearer secret is stored and looked up: SHA-256 hex. The secrets are 256-bit
    random, so a fast hash is enough (passwords get argon2)."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --- what an account row keeps --------------------------------------------------------------


class AccountColumns:
    """Columns of an account that logs in with a password (+ TOTP) and can be locked."""

    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)


# --- the login API's bodies -----------------------------------------------------------------


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=12)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class TotpSetup(BaseModel):
    secret: str
    uri: str
