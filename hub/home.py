"""The hub's home folder: identity (hub.json), signing key (keys/hub.jwk.json) and database."""

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc.jwk import OKPKey

from contracts import signing
from contracts.errors import ContractError, KeyInvalid
from contracts.v1 import HubKeyAnnouncement, HubKeyRotation
from contracts.v1.federation import HUB_KEY_ROTATION_HEADER
from hub.exceptions import HubSetupError
from hub.settings import DATABASE_FILE
from runtime import keys

IDENTITY_FILE = "hub.json"
KEY_FILE = Path("keys") / "hub.jwk.json"
# The latest `sauti hub rotate-key` announcement, signed by the old and the new key.
ROTATION_FILE = "hub.key-rotation.json"


@dataclass(frozen=True)
class PreviousHubKey:
    """A key the hub signed with before a rotation (public half only) and its overlap's end."""

    kid: str
    public_jwk: dict[str, Any]
    retired_at: str
    overlap_until: str


@dataclass(frozen=True)
class HubIdentity:
    hub_id: str
    kid: str
    public_jwk: dict[str, Any]
    # Replaced by `sauti hub rotate-key`, newest first: what verifies the hub's older signatures.
    previous_keys: tuple[PreviousHubKey, ...] = ()


def init_home(home: Path, *, hub_id: str = "lnob-hub") -> HubIdentity:
    """Create the home with a fresh Ed25519 key; an existing identity is kept, never replaced."""
    identity_path = home / IDENTITY_FILE
    if identity_path.exists():
        return load_identity(home)
    home.mkdir(parents=True, exist_ok=True)
    key = signing.generate_key()
    key_path = home / KEY_FILE
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.chmod(0o700)
    keys.save_private_key(key, key_path)
    key_path.chmod(0o600)
    identity = HubIdentity(
        hub_id=hub_id, kid=signing.key_id(key), public_jwk=signing.public_jwk(key)
    )
    _write_identity(home, identity)
    return identity


def _write_identity(home: Path, identity: HubIdentity) -> None:
    data: dict[str, Any] = {
        "hub_id": identity.hub_id,
        "kid": identity.kid,
        "public_jwk": identity.public_jwk,
    }
    if identity.previous_keys:
        data["previous_keys"] = [vars(k) for k in identity.previous_keys]
    tmp = home / f".{IDENTITY_FILE}.tmp"
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(home / IDENTITY_FILE)


def load_identity(home: Path) -> HubIdentity:
    try:
        data = json.loads((home / IDENTITY_FILE).read_text())
        return HubIdentity(
            hub_id=data["hub_id"],
            kid=data["kid"],
            public_jwk=data["public_jwk"],
            previous_keys=tuple(PreviousHubKey(**k) for k in data.get("previous_keys", [])),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _no_home(home, f"no readable {IDENTITY_FILE}") from exc


def check_database_file(path: Path) -> None:
    """Refuse to open a SQLite file that does not exist in a home `sauti hub init` did not
    make: a command given a wrong or missing `--home` (or SAUTI_HOME) says so in one line,
    instead of failing in SQLite or quietly creating an empty hub there."""
    if path.exists():
        return
    folder = path.parent
    if not folder.is_dir():
        raise _no_home(folder, "the folder does not exist")
    if path.name == DATABASE_FILE and not (folder / IDENTITY_FILE).exists():
        raise _no_home(folder, f"no {IDENTITY_FILE}")


def _no_home(folder: Path, why: str) -> HubSetupError:
    return HubSetupError(
        f"no hub home at {folder} ({why}); create one with `sauti hub init --home {folder}`"
        " or give the right --home (or SAUTI_HOME)"
    )


def rotate_key(home: Path, *, overlap_seconds: int, now: datetime | None = None) -> HubKeyRotation:
    """Replace the hub key and write the announcement nodes adopt on their next contact.

    The announcement is signed once, here, by the old key and by the new one; then the old
    private key is overwritten and only its public half stays in hub.json (the hub never
    signs with it again). A running hub and its workers pick the new key up on restart.
    """
    now = now or datetime.now(UTC)
    identity, old = load_identity(home), load_key(home)
    new = signing.generate_key()
    announcement = HubKeyAnnouncement(
        hub_id=identity.hub_id,
        old_kid=identity.kid,
        new_public_jwk=signing.public_jwk(new),
        issued_at=now,
        overlap_until=now + timedelta(seconds=overlap_seconds),
    )
    rotation = HubKeyRotation(
        by_old_key=signing.sign(announcement, old), by_new_key=signing.sign(announcement, new)
    )
    rotation_path = home / ROTATION_FILE
    tmp = home / f".{ROTATION_FILE}.tmp"
    tmp.write_text(rotation.model_dump_json() + "\n")
    tmp.replace(rotation_path)
    key_path = home / KEY_FILE
    new_path = key_path.with_name(f".{key_path.name}.new")
    keys.save_private_key(new, new_path)
    new_path.chmod(0o600)
    keys.replace_private_key(new_path, key_path)
    retired = PreviousHubKey(
        kid=identity.kid,
        public_jwk=identity.public_jwk,
        retired_at=now.isoformat(),
        overlap_until=announcement.overlap_until.isoformat(),
    )
    _write_identity(
        home,
        HubIdentity(
            hub_id=identity.hub_id,
            kid=signing.key_id(new),
            public_jwk=signing.public_jwk(new),
            previous_keys=(retired, *identity.previous_keys),
        ),
    )
    return rotation


def load_rotation(home: Path, *, now: datetime | None = None) -> HubKeyRotation | None:
    """The latest announcement while its overlap lasts (after it, nodes refuse it anyway).

    Asked on every push request and poll answer: the file is parsed once per version (its
    stat is the cache key), not on each call."""
    path = home / ROTATION_FILE
    try:
        stat = path.stat()
    except OSError:
        return None
    parsed = _parsed_rotation(path, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    if parsed is None:
        return None
    rotation, overlap_until = parsed
    return rotation if (now or datetime.now(UTC)) <= overlap_until else None


def rotation_headers(home: Path) -> dict[str, str]:
    """The header that carries the announcement on push requests and node-facing answers
    while the overlap lasts (none after it)."""
    rotation = load_rotation(home)
    return {HUB_KEY_ROTATION_HEADER: rotation.model_dump_json()} if rotation else {}


@functools.lru_cache(maxsize=8)
def _parsed_rotation(
    path: Path, _inode: int, _mtime_ns: int, _size: int
) -> tuple[HubKeyRotation, datetime] | None:
    try:
        rotation = HubKeyRotation.model_validate_json(path.read_text())
        announcement = HubKeyAnnouncement.model_validate_json(
            signing.unverified_payload(rotation.by_new_key)
        )
    except (OSError, ValueError, ContractError):
        return None
    overlap_until = announcement.overlap_until
    if overlap_until.tzinfo is None:
        overlap_until = overlap_until.replace(tzinfo=UTC)
    return rotation, overlap_until


def signer(home: Path) -> tuple[HubIdentity, OKPKey]:
    """The hub's identity and signing key, read once per version of their files (their stat
    is the cache key): for work that signs outside the app's own state, such as a secure
    aggregation query on a Celery worker, which runs for every query."""
    versions = tuple(
        (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        for stat in ((home / IDENTITY_FILE).stat(), (home / KEY_FILE).stat())
    )
    return _signer(home, versions)


@functools.lru_cache(maxsize=8)
def _signer(home: Path, _versions: tuple[tuple[int, int, int], ...]) -> tuple[HubIdentity, OKPKey]:
    return load_identity(home), load_key(home)


def load_key(home: Path) -> OKPKey:
    try:
        return keys.load_private_key(home / KEY_FILE)
    except (OSError, KeyInvalid) as exc:
        raise HubSetupError(f"no readable hub key in {home}; run `sauti hub init`") from exc
