"""The versioned dataset store on disk: published contracts and immutable import versions.

    <home>/datasets/<name>/contracts/v<N>.json    contract version N, never rewritten
    <home>/datasets/<name>/mappings/v<N>.json     how this node's exports map onto it (local)
    <home>/datasets/<name>/versions/<V>/          import version V, never rewritten:
        data.parquet  manifest.json  report.json

An import version is validated against exactly one contract version. The "current" data of
a contract version is its newest import version; an agreement pins a contract version, so
new imports under the same contract reach queries at once, and an import under a new
contract version waits until an agreement names that version. A version folder appears by
one atomic rename, so a half-written import is never visible.
"""

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from contracts import signing
from contracts.v1 import DatasetContract
from node.datasets.exceptions import ContractConflict, UnknownDataset
from node.datasets.schemas import ImportMapping, Manifest
from runtime.memo import Memo

SALT_FILE = ".identifier-salt"
T = TypeVar("T")


class _ParsedFiles:
    """Parsed contracts and manifests, read once per file: every query reads both.

    They are never rewritten in place (a new version is a new file, placed by a link or a
    rename, so a new inode), and a hit is checked against the file's inode, size and change
    time on every read: a deleted or replaced file is read (or refused) afresh."""

    def __init__(self, size: int = 512) -> None:
        self._memo = Memo[tuple[str, str, int, int, int], object](size)

    def read(self, path: str | Path, parse: Callable[[str], T]) -> T:
        stat = os.stat(path)
        key = (parse.__qualname__, os.fspath(path), stat.st_ino, stat.st_size, stat.st_ctime_ns)
        # Stored by this very parse (its name is in the key).
        return self._memo.get(key, lambda: parse(_read_text(path)))  # type: ignore[return-value]


def _read_text(path: str | Path) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


_parsed = _ParsedFiles()


def _contract(text: str) -> DatasetContract:
    return DatasetContract.model_validate(json.loads(text))


def _manifest(text: str) -> Manifest:
    return Manifest.model_validate_json(text)


def root(home: Path) -> Path:
    return home / "datasets"


def dataset_dir(home: Path, name: str) -> Path:
    return root(home) / name


def names(home: Path) -> list[str]:
    base = root(home)
    if not base.exists():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


# Every query reads the store (`current`, `read_contract`): these helpers join and list with
# plain strings, which costs a fraction of building a `pathlib.Path` per step.
def _folder(home: Path, name: str, *parts: str) -> str:
    return os.path.join(home, "datasets", name, *parts)


def _numbered(folder: str | Path, prefix: str = "", suffix: str = "") -> list[int]:
    try:
        children = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):  # missing, or not a folder: none here
        return []
    found = []
    for child in children:
        stem = child.removeprefix(prefix).removesuffix(suffix)
        if child.startswith(prefix) and child.endswith(suffix) and stem.isdigit():
            found.append(int(stem))
    return sorted(found)


def contract_versions(home: Path, name: str) -> list[int]:
    return _numbered(_folder(home, name, "contracts"), "v", ".json")


def read_contract(home: Path, name: str, version: int | None = None) -> DatasetContract:
    versions = contract_versions(home, name)
    if version is None and versions:
        version = versions[-1]
    if version is None or version not in versions:
        raise UnknownDataset(f"dataset {name} has no published contract of that version")
    return _parsed.read(_folder(home, name, "contracts", f"v{version}.json"), _contract)


def publish_contract(home: Path, contract: DatasetContract) -> bool:
    """Publish a contract version; True if new, False if this very text is already there."""
    folder = dataset_dir(home, contract.name) / "contracts"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"v{contract.version}.json"
    if target.exists():
        if signing.digest(read_contract(home, contract.name, contract.version)) == signing.digest(
            contract
        ):
            return False
        raise ContractConflict(
            f"contract {contract.name} version {contract.version} is already published with"
            " another text: publish the change as a new version"
        )
    fd, tmp = tempfile.mkstemp(prefix=".contract-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(contract.model_dump_json(indent=2))
        try:
            os.link(tmp, target)  # fails if a concurrent publisher got there first
        except FileExistsError:
            return publish_contract(home, contract)
    finally:
        os.unlink(tmp)
    return True


def check_publishable(home: Path, contract: DatasetContract) -> None:
    """Refuse early a contract whose version is already published with another text."""
    if contract.version in contract_versions(home, contract.name):
        published = read_contract(home, contract.name, contract.version)
        if signing.digest(published) != signing.digest(contract):
            raise ContractConflict(
                f"contract {contract.name} version {contract.version} is already published with"
                " another text: publish the change as a new version"
            )


def version_dir(home: Path, name: str, version: int) -> Path:
    return dataset_dir(home, name) / "versions" / str(version)


def version_dirs(home: Path, name: str) -> list[int]:
    """Complete import versions: a folder counts once its manifest is in place."""
    folder = _folder(home, name, "versions")
    return [v for v in _numbered(folder) if _exists(os.path.join(folder, str(v), "manifest.json"))]


def _exists(path: str) -> bool:
    """`Path.exists()` for a string: missing (or under a non-directory) is False, other
    errors raise."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def write_manifest(home: Path, manifest: Manifest) -> None:
    """Write the manifest last and atomically: this is what makes a version visible."""
    vdir = version_dir(home, manifest.name, manifest.version)
    tmp = vdir / ".manifest.json.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    tmp.rename(vdir / "manifest.json")


def discard(home: Path, name: str, version: int) -> None:
    """Undo a commit whose logging failed (the manifest may or may not be there)."""
    vdir = version_dir(home, name, version)
    if vdir.exists():
        trash = vdir.with_name(f".discarded-{version}-{secrets.token_hex(4)}")
        vdir.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest(home: Path, name: str, version: int) -> Manifest:
    path = _folder(home, name, "versions", str(version), "manifest.json")
    try:
        return _parsed.read(path, _manifest)
    except OSError as exc:
        raise UnknownDataset(f"dataset {name} has no import version {version}") from exc


def manifests(home: Path, name: str) -> list[Manifest]:
    return [manifest(home, name, v) for v in version_dirs(home, name)]


def current(home: Path, name: str, contract_version: int | None = None) -> Manifest:
    """The newest import version (under `contract_version`, or under the newest contract)."""
    found = manifests(home, name)
    if contract_version is None and found:
        contract_version = max(m.contract_version for m in found)
    matching = [m for m in found if m.contract_version == contract_version]
    if not matching:
        raise UnknownDataset("no such dataset version at this node")
    return matching[-1]


def staging(home: Path, name: str) -> Path:
    folder = dataset_dir(home, name) / "versions"
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".import-", dir=folder))


def commit(staged: Path, home: Path, name: str) -> int:
    """Move a staged folder into place under the next free version number."""
    folder = dataset_dir(home, name) / "versions"
    while True:
        existing = _numbered(folder)  # complete or being completed: never reuse a number
        number = (existing[-1] if existing else 0) + 1
        try:
            staged.rename(folder / str(number))
        except OSError:
            if (folder / str(number)).exists():
                continue  # a concurrent import took the number: take the next one
            raise
        return number


def remove(home: Path, name: str, version: int) -> None:
    """Take a version out of sight at once (rename), then delete its files."""
    vdir = dataset_dir(home, name) / "versions" / str(version)
    if not vdir.exists():
        raise UnknownDataset(f"dataset {name} has no import version {version}")
    trash = vdir.with_name(f".deleted-{version}-{secrets.token_hex(4)}")
    vdir.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def salt(home: Path) -> bytes:
    """The node's secret salt for hashed identifiers, created on first use (mode 0600)."""
    path = root(home) / SALT_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def mapping_path(home: Path, name: str, contract_version: int) -> Path:
    """Where the node keeps how its exports map onto a contract version (never published)."""
    return dataset_dir(home, name) / "mappings" / f"v{contract_version}.json"


def read_mapping(home: Path, name: str, contract_version: int) -> ImportMapping | None:
    path = mapping_path(home, name, contract_version)
    if not path.exists():
        return None
    return ImportMapping.model_validate_json(path.read_text(encoding="utf-8"))


def write_mapping(home: Path, mapping: ImportMapping) -> Path:
    """Write (or replace) a mapping at once: an import reads the old or the new, never half."""
    path = mapping_path(home, mapping.dataset, mapping.contract_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mapping-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(mapping.model_dump_json(indent=2))
    os.replace(tmp, path)
    return path
