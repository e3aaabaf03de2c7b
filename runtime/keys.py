"""Private key files of a home folder: written owner-only, replaced atomically, the old
bytes overwritten. Keys themselves (generate, thumbprint, sign) are `contracts.signing`."""

import json
import os
from pathlib import Path

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from contracts.errors import KeyInvalid


def save_private_key(key: OKPKey, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(key.as_dict(private=True)))


def replace_private_key(new: Path, current: Path) -> None:
    """Make the key file at `new` the one at `current` in one rename, then overwrite the old
    key's bytes through a handle still open on it: readers see the old file or the new one,
    never half of either, and the retired private key does not stay on disk."""
    with current.open("r+b") as handle:
        new.replace(current)
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        handle.write(b"\0" * size)
        handle.flush()
        os.fsync(handle.fileno())


def load_private_key(path: Path) -> OKPKey:
    try:
        return OKPKey.import_key(json.loads(path.read_text()))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise KeyInvalid(f"cannot read the private key at {path}") from exc
