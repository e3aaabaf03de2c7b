"""A node's home folder: identity (node.json), signing key and the pinned hub key."""

import json
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from joserfc.jwk import OKPKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import HubKeyAnnouncement, HubKeyRotation
from node.exceptions import HomeError
from runtime import keys as key_files

IDENTITY_FILE = "node.json"
KEY_FILE = Path("keys") / "node.jwk.json"
# A key being rotated in: written before the hub is asked, so a rotation interrupted after the
# hub accepted it resumes with the same key instead of locking the node out.
NEXT_KEY_FILE = Path("keys") / "node.next.jwk.json"


class PreviousKey(BaseModel):
    """A public key this node signed with before a rotation (its private half is destroyed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kid: str
    public_jwk: dict[str, Any]
    retired_at: datetime
    # Until when the hub still verifies it (releases signed before the rotation count).
    valid_until: datetime | None = None


class PreviousHubKey(BaseModel):
    """A hub key replaced by an announced rotation: it still verifies what it signed before
    (agreements, modules), and new requests until `overlap_until`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kid: str
    public_jwk: dict[str, Any]
    retired_at: datetime
    overlap_until: datetime


class NodeIdentity(BaseModel):
    """Who this node is, and which hub it answers to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    name: str
    country: str = Field(pattern=r"^\d{3}$")
    hub_id: str | None = None
    hub_public_jwk: dict[str, Any] | None = None
    # Where the node reaches its hub on its own initiative (e.g. publishing audit checkpoints);
    # optional because a node only ever answers the hub otherwise.
    hub_url: str | None = None
    kid: str
    public_jwk: dict[str, Any]
    # Keys replaced by `sauti node rotate-key`, newest first (public halves only).
    previous_keys: tuple[PreviousKey, ...] = ()
    # Hub keys replaced by a verified hub key rotation, newest first.
    previous_hub_keys: tuple[PreviousHubKey, ...] = ()


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:100] or "node"


def init_home(home: Path, *, name: str, country: str, node_id: str | None = None) -> NodeIdentity:
    """Create a new node home; refuses to overwrite an existing one (its key is its identity)."""
    if (home / IDENTITY_FILE).exists() or (home / KEY_FILE).exists():
        raise HomeError("a node home already exists in that folder")
    key = signing.generate_key()
    try:
        identity = NodeIdentity(
            node_id=node_id or slugify(name),
            name=name,
            country=country,
            kid=signing.key_id(key),
            public_jwk=signing.public_jwk(key),
        )
    except ValidationError as exc:
        fields = ", ".join(str(err["loc"][0]) for err in exc.errors() if err["loc"])
        raise HomeError(f"invalid node identity fields: {fields}") from exc
    for folder in (home, home / "keys", home / "datasets"):
        folder.mkdir(parents=True, exist_ok=True)
    key_files.save_private_key(key, home / KEY_FILE)
    _write_identity(home, identity)
    return identity


# Parsed identity and key, keyed by the file's text: every request needs both, and reading a
# small file is far cheaper than validating JSON and importing a key. Keyed by content (not
# mtime), so a rewritten file is never served stale.
_parsed: dict[tuple[str, str], Any] = {}
_PARSED_MAX = 64


def _remember(kind: str, text: str, value: Any) -> None:
    if len(_parsed) >= _PARSED_MAX:
        _parsed.clear()
    _parsed[(kind, text)] = value


def load_identity(home: Path) -> NodeIdentity:
    try:
        text = (home / IDENTITY_FILE).read_text()
        cached = _parsed.get(("identity", text))
        if cached is not None:
            return cast(NodeIdentity, cached)
        identity = NodeIdentity.model_validate_json(text)
    except FileNotFoundError as exc:
        raise HomeError("no node home in that folder (run `sauti node init`)") from exc
    except ValidationError as exc:
        raise HomeError("node.json is not a valid node identity") from exc
    _remember("identity", text, identity)
    return identity


def load_key(home: Path) -> OKPKey:
    path = home / KEY_FILE
    try:
        text = path.read_text()
        cached = _parsed.get(("key", text))
        if cached is not None:
            return cast(OKPKey, cached)
        key = key_files.load_private_key(path)
    except (ContractError, FileNotFoundError) as exc:
        raise HomeError("cannot read the node's private key") from exc
    _remember("key", text, key)
    return key


def pin_hub(home: Path, *, hub_id: str, public_jwk: dict[str, Any], url: str | None = None) -> None:
    """Pin the one hub whose signed requests and agreements this node will honour.

    `url` is optional: the node only needs it to call the hub itself (audit checkpoints).
    Re-pinning the same hub without a URL keeps the one already pinned.
    """
    identity = load_identity(home)
    try:
        key = signing.load_public_key(public_jwk)
    except ContractError as exc:
        raise HomeError("the hub key is not an Ed25519 public JWK") from exc
    if url is not None:
        url = url.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise HomeError("the hub URL must start with http:// or https://")
    elif identity.hub_id == hub_id:
        url = identity.hub_url
    update: dict[str, Any] = {
        "hub_id": hub_id,
        "hub_public_jwk": signing.public_jwk(key),
        "hub_url": url,
    }
    if identity.hub_id != hub_id:
        update["previous_hub_keys"] = ()  # another hub's old keys verify nothing here
    _write_identity(home, identity.model_copy(update=update))


def hub_keys(identity: NodeIdentity, *, now: datetime | None) -> dict[str, dict[str, Any]]:
    """The hub keys by id: with `now`, those that may sign a new request (the pinned one, and a
    replaced one during its overlap); without, every key the hub had (for older signatures)."""
    if identity.hub_public_jwk is None:
        return {}
    keys = {
        signing.key_id(signing.load_public_key(identity.hub_public_jwk)): identity.hub_public_jwk
    }
    for old in identity.previous_hub_keys:
        if now is None or now <= _utc(old.overlap_until):
            keys.setdefault(old.kid, old.public_jwk)
    return keys


def adopt_hub_rotation(home: Path, rotation: HubKeyRotation, *, now: datetime) -> bool:
    """Pin the hub's announced new key if both signatures verify; True if the pin changed.

    The announcement must be signed by the pinned hub key (naming it as the old key) and by
    the key it announces, for the pinned hub, and be adopted within its overlap. Anything
    else raises HomeError and changes nothing. An announcement already adopted is a no-op.
    """
    identity = load_identity(home)
    if identity.hub_id is None or identity.hub_public_jwk is None:
        raise HomeError("no hub is pinned at this node")
    try:
        claimed = HubKeyAnnouncement.model_validate_json(
            signing.unverified_payload(rotation.by_new_key)
        )
        new_key = signing.load_public_key(claimed.new_public_jwk)
        pinned = signing.load_public_key(identity.hub_public_jwk)
        if signing.key_id(new_key) == signing.key_id(pinned):
            return False
        by_old = signing.verify_model(rotation.by_old_key, pinned, HubKeyAnnouncement)
        by_new = signing.verify_model(rotation.by_new_key, new_key, HubKeyAnnouncement)
    except (ContractError, ValidationError) as exc:
        raise HomeError("the hub key announcement does not verify with the pinned hub key") from exc
    if by_old != by_new:
        raise HomeError("the two signatures cover different announcements")
    if by_old.hub_id != identity.hub_id or by_old.old_kid != signing.key_id(pinned):
        raise HomeError("the announcement is for another hub or another key")
    if now > _utc(by_old.overlap_until):
        raise HomeError("the announcement's overlap is over: enroll again with a new token")
    old = PreviousHubKey(
        kid=by_old.old_kid,
        public_jwk=identity.hub_public_jwk,
        retired_at=_utc(by_old.issued_at),
        overlap_until=_utc(by_old.overlap_until),
    )
    _write_identity(
        home,
        identity.model_copy(
            update={
                "hub_public_jwk": signing.public_jwk(new_key),
                "previous_hub_keys": (old, *identity.previous_hub_keys),
            }
        ),
    )
    return True


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def next_key(home: Path) -> OKPKey:
    """The key being rotated in: the pending one if a rotation was interrupted, else a new one."""
    path = home / NEXT_KEY_FILE
    if path.exists():
        try:
            return key_files.load_private_key(path)
        except ContractError as exc:
            raise HomeError("cannot read the node's pending new key") from exc
    key = signing.generate_key()
    tmp = path.with_name(f".{path.name}.tmp")
    key_files.save_private_key(key, tmp)
    tmp.replace(path)
    return key


def discard_next_key(home: Path) -> None:
    """Forget a pending key the hub refused (a later rotation starts with a fresh one)."""
    (home / NEXT_KEY_FILE).unlink(missing_ok=True)


def switch_key(home: Path, *, retired_at: datetime, valid_until: datetime | None) -> NodeIdentity:
    """Sign with the pending key from now on (the hub accepted it); the old private key goes.

    The key file is replaced by one rename, so a running node signs its next answer with the
    new key; only the old public half stays in node.json, for audit verification. Nothing at
    the node signs with the old key again: releases it signed are stored as signed tokens.
    """
    identity = load_identity(home)
    path = home / NEXT_KEY_FILE
    try:
        new = key_files.load_private_key(path)
    except (ContractError, FileNotFoundError) as exc:
        raise HomeError("no pending new key to switch to") from exc
    old = PreviousKey(
        kid=identity.kid,
        public_jwk=identity.public_jwk,
        retired_at=retired_at,
        valid_until=valid_until,
    )
    current = home / KEY_FILE
    key_files.replace_private_key(path, current)
    updated = identity.model_copy(
        update={
            "kid": signing.key_id(new),
            "public_jwk": signing.public_jwk(new),
            "previous_keys": (old, *identity.previous_keys),
        }
    )
    _write_identity(home, updated)
    return updated


def repair_identity(home: Path) -> NodeIdentity:
    """After a crash between switching the key file and node.json, the key file is the truth."""
    identity = load_identity(home)
    key = load_key(home)
    kid = signing.key_id(key)
    if kid == identity.kid:
        return identity
    updated = identity.model_copy(update={"kid": kid, "public_jwk": signing.public_jwk(key)})
    _write_identity(home, updated)
    return updated


def _write_identity(home: Path, identity: NodeIdentity) -> None:
    tmp = home / f".{IDENTITY_FILE}.tmp"
    tmp.write_text(json.dumps(identity.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(home / IDENTITY_FILE)
