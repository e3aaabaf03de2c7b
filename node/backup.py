"""Back up a node home (keys, identity, datasets, ledger and audit chain) and restore it.

One `.tar.gz`: every file of the home except the live SQLite files, a consistent snapshot
of the database taken with SQLite's online backup (writers may keep going), and a
manifest with each file's SHA-256, checked on restore. A node on PostgreSQL backs up its
database with pg_dump (docs/operations.md); this archive then holds the files only.
"""

import hashlib
import io
import json
import sqlite3
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url

from node.audit import service as audit
from node.db import SCHEMA, transaction
from node.exceptions import HomeError
from node.home import IDENTITY_FILE, KEY_FILE, load_identity
from node.settings import NodeSettings

MANIFEST = "sauti-backup.json"
DATABASE = "node.sqlite"
FORMAT = "sauti-node-backup/1"


def _sqlite_path(settings: NodeSettings) -> Path | None:
    url = make_url(settings.db_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database)


def backup(*, settings: NodeSettings, out: Path, actor: str, include_database: bool = True) -> int:
    """Write the archive to `out`; returns how many files it holds. Logged in the chain first,
    so the backup holds the record of its own making."""
    home = settings.home
    identity = load_identity(home)
    database = _sqlite_path(settings)
    if database is None and include_database:
        raise HomeError(
            "the database is PostgreSQL: back it up with pg_dump, then run this with "
            "--without-database for the home files"
        )
    with transaction(settings.db_url) as session:
        audit.append(
            session,
            actor=actor,
            action="node_backed_up",
            object="home",
            details={"database": include_database},
        )
    skip = {database.resolve()} if database else set()
    skip |= {
        Path(f"{p}{suffix}").resolve() for p in skip for suffix in ("-wal", "-shm", "-journal")
    }
    files: dict[str, str] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(out, "w:gz") as tar:
        for path in sorted(home.rglob("*")):
            if not path.is_file() or path.resolve() in skip or path.resolve() == out.resolve():
                continue
            name = path.relative_to(home).as_posix()
            files[name] = _sha256(path)
            tar.add(path, arcname=name, recursive=False)
        if database is not None and include_database:
            snapshot = Path(scratch) / DATABASE
            _snapshot(database, snapshot)
            files[DATABASE] = _sha256(snapshot)
            tar.add(snapshot, arcname=DATABASE)
        manifest = {
            "format": FORMAT,
            "node_id": identity.node_id,
            "created_at": datetime.now(UTC).isoformat(),
            "schema_revision": SCHEMA.head(),
            "files": files,
        }
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(data), 0o600
        tar.addfile(info, io.BytesIO(data))
    out.chmod(0o600)  # it holds the node's private key
    return len(files)


def restore(*, archive: Path, home: Path) -> dict[str, Any]:
    """Unpack `archive` into an empty `home`, checking every file against the manifest."""
    if (home / IDENTITY_FILE).exists() or (home / KEY_FILE).exists():
        raise HomeError("a node home already exists in that folder; restore into a new one")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            manifest = _manifest(tar)
            members = [m for m in tar.getmembers() if m.name != MANIFEST]
            names = {m.name for m in members}
            if names != set(manifest["files"]):
                raise HomeError("the backup's files differ from its manifest")
            home.mkdir(parents=True, exist_ok=True)
            # "data": no absolute paths, no `..`, no links out, no device files.
            tar.extractall(home, members=members, filter="data")
    except (tarfile.TarError, OSError, KeyError, ValueError) as exc:
        raise HomeError("the backup cannot be read (not a Sauti node backup?)") from exc
    for name, digest in manifest["files"].items():
        if _sha256(home / PurePosixPath(name)) != digest:
            raise HomeError(f"the restored file {name} does not match the backup's manifest")
    for private in (home / KEY_FILE, home / DATABASE):
        if private.exists():
            private.chmod(0o600)
    (home / KEY_FILE).parent.chmod(0o700)
    return manifest


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    member = tar.extractfile(MANIFEST)
    if member is None:
        raise KeyError(MANIFEST)
    manifest: dict[str, Any] = json.loads(member.read())
    if manifest.get("format") != FORMAT:
        raise ValueError("unknown backup format")
    return manifest


def _snapshot(source: Path, target: Path) -> None:
    # SQLite's online backup copies a consistent state, WAL included, while others write.
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
