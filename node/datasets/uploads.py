"""Uploads staged on the node's disk while a steward reviews a draft, then thrown away.

Drafting from a browser takes several steps (draft, look at a column's values, name levels,
set bounds, publish, import) over one uploaded export and its XLSForm. The files wait in
`<home>/datasets/.uploads/<token>/` under a random token, never longer than `STAGED_FOR`,
and are deleted once published and imported, when they expire, or when the steward starts
over. They hold raw data, so they live beside the dataset store (same disk, same
permissions) and never in a temporary folder another user could read.
"""

import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path, PurePath

from node.datasets import store
from node.datasets.exceptions import UploadExpired

STAGED_FOR = 2 * 3600  # seconds a staged upload waits for the steward
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
EXPORT, CODEBOOK, PARTNER = "export", "codebook", "partner"


@dataclass(frozen=True)
class Staged:
    """One staged upload: the export and, if given, its XLSForm and a partner's codebook."""

    token: str
    export: Path
    codebook: Path | None
    partner: Path | None = None

    @property
    def filename(self) -> str:
        return self.export.name


def _root(home: Path) -> Path:
    return store.root(home) / ".uploads"


def safe_name(filename: str) -> str:
    """A file name that cannot leave its folder (the extension kept: it tells the kind)."""
    return _UNSAFE.sub("_", PurePath(filename).name).strip(".") or "upload"


def sweep(home: Path, *, now: float | None = None) -> None:
    """Delete staged uploads older than STAGED_FOR (each new upload runs this)."""
    moment = time.time() if now is None else now
    folder = _root(home)
    if not folder.exists():
        return
    for child in folder.iterdir():
        if child.is_dir() and moment - child.stat().st_mtime > STAGED_FOR:
            shutil.rmtree(child, ignore_errors=True)


def new_folder(home: Path) -> tuple[str, Path]:
    """A fresh, empty staging folder and its token."""
    sweep(home)
    token = secrets.token_urlsafe(16)
    folder = _root(home) / token
    folder.mkdir(parents=True)
    return token, folder


def part_path(folder: Path, part: str, filename: str) -> Path:
    """Where a received part (EXPORT or CODEBOOK) is written inside a staging folder."""
    target = folder / part
    target.mkdir(exist_ok=True)
    return target / safe_name(filename)


def find(home: Path, token: str) -> Staged:
    """A staged upload by its token; UploadExpired once gone, expired or never made."""
    folder = _root(home) / token
    if not _TOKEN.match(token) or not folder.is_dir():
        raise UploadExpired("the uploaded file is no longer here: upload it again")
    if time.time() - folder.stat().st_mtime > STAGED_FOR:
        shutil.rmtree(folder, ignore_errors=True)
        raise UploadExpired("the uploaded file waited too long and was deleted: upload it again")
    exports, codebooks, partners = (
        sorted((folder / part).glob("*")) if (folder / part).is_dir() else []
        for part in (EXPORT, CODEBOOK, PARTNER)
    )
    if len(exports) != 1:
        raise UploadExpired("the uploaded file is no longer here: upload it again")
    return Staged(
        token=token,
        export=exports[0],
        codebook=codebooks[0] if codebooks else None,
        partner=partners[0] if partners else None,
    )


def discard(home: Path, token: str) -> None:
    if _TOKEN.match(token):
        shutil.rmtree(_root(home) / token, ignore_errors=True)
