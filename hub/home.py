"""The hub's home folder: identity (hub.json), signing key (keys/hub.jwk.json) and database."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import OKPKey

from contracts import signing
from contracts.errors import KeyInvalid
from hub.exceptions import HubSetupError

IDENTITY_FILE = "hub.json"
KEY_FILE = Path("keys") / "hub.jwk.json"


@dataclass(frozen=True)
class HubIdentity:
    hub_id: str
    kid: str
    public_jwk: dict[str, Any]


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
    signing.save_private_key(key, key_path)
    key_path.chmod(0o600)
    identity = HubIdentity(
        hub_id=hub_id, kid=signing.key_id(key), public_jwk=signing.public_jwk(key)
    )
    identity_path.write_text(
        json.dumps(
            {"hub_id": identity.hub_id, "kid": identity.kid, "public_jwk": identity.public_jwk}
        )
        + "\n"
    )
    return identity


def load_identity(home: Path) -> HubIdentity:
    try:
        data = json.loads((home / IDENTITY_FILE).read_text())
        return HubIdentity(hub_id=data["hub_id"], kid=data["kid"], public_jwk=data["public_jwk"])
    except (OSError, ValueError, KeyError) as exc:
        raise HubSetupError(f"no hub identity in {home}; run `sauti hub init`") from exc


def load_key(home: Path) -> OKPKey:
    try:
        return signing.load_private_key(home / KEY_FILE)
    except (OSError, KeyInvalid) as exc:
        raise HubSetupError(f"no readable hub key in {home}; run `sauti hub init`") from exc
