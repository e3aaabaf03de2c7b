"""Files in the node home: pinned modules (hub-signed JWS) and mappings (steward's YAML).

Mappings are files beside the datasets, not database rows: the steward edits them as YAML,
backups of the home carry them, and nothing about them is ever sent except coverage.
"""

import functools
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import Module
from node.harmonisation.exceptions import (
    MappingInvalid,
    MappingMissing,
    ModuleInvalid,
    ModuleNotHeld,
)
from node.harmonisation.schemas import Mapping
from node.home import hub_keys, load_identity

MODULES = "modules"
MAPPINGS = "mappings"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _stem(name: str, version: int) -> str:
    if not _NAME.fullmatch(name):
        raise ModuleNotHeld("module names are lower-case letters, digits and underscores")
    return f"{name}-v{version}"


def module_path(home: Path, name: str, version: int) -> Path:
    return home / MODULES / f"{_stem(name, version)}.jws"


def mapping_path(home: Path, name: str, version: int) -> Path:
    return home / MAPPINGS / f"{_stem(name, version)}.yaml"


def verify_module(home: Path, token: str) -> Module:
    """A module document is trusted only when the pinned hub key signed it."""
    identity = load_identity(home)
    if identity.hub_public_jwk is None:
        raise ModuleInvalid("no hub is pinned at this node, so no module can be verified")
    # The key the header names among every key the hub had (modules signed before a hub key
    # rotation stay valid); the pinned key otherwise, for the error it gives.
    keys = hub_keys(identity, now=None)
    try:
        kid = str(signing.unverified_header(token.strip()).get("kid"))
    except ContractError:
        kid = ""
    jwk = keys.get(kid, identity.hub_public_jwk)
    return _verified(token.strip(), tuple(sorted(jwk.items())))


@functools.lru_cache(maxsize=64)
def _verified(token: str, jwk: tuple[tuple[str, object], ...]) -> Module:
    try:
        return signing.verify_model(token, signing.load_public_key(dict(jwk)), Module)
    except (ContractError, ValidationError) as exc:
        raise ModuleInvalid("the module is not signed by the pinned hub or does not parse") from exc


def save_module(home: Path, token: str) -> Module:
    module = verify_module(home, token)
    path = module_path(home, module.name, module.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(token.strip() + "\n")
    tmp.replace(path)
    return module


def load_module(home: Path, name: str, version: int) -> Module:
    path = module_path(home, name, version)
    try:
        token = path.read_text()
    except FileNotFoundError as exc:
        raise ModuleNotHeld(
            f"module {name} v{version} is not held here (sauti node modules fetch)"
        ) from exc
    module = verify_module(home, token)
    if (module.name, module.version) != (name, version):
        raise ModuleInvalid(f"the file for module {name} v{version} holds another module")
    return module


def held_versions(home: Path, name: str) -> list[int]:
    """The versions of module `name` pinned here (files only: each verifies when loaded)."""
    _stem(name, 1)  # refuses a name that is not a module name before it reaches a path
    folder = home / MODULES
    stems = (p.name.removeprefix(f"{name}-v").removesuffix(".jws") for p in folder.glob("*.jws"))
    return sorted(int(v) for v in stems if v.isdigit()) if folder.is_dir() else []


def held_modules(home: Path) -> list[Module]:
    folder = home / MODULES
    found = []
    for path in sorted(folder.glob("*.jws")) if folder.is_dir() else []:
        found.append(verify_module(home, path.read_text()))
    return found


def parse_mapping(text: str) -> Mapping:
    try:
        document = yaml.safe_load(text)
        return Mapping.model_validate(document)
    except yaml.YAMLError as exc:
        raise MappingInvalid("the mapping is not valid YAML") from exc
    except ValidationError as exc:
        where = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise MappingInvalid(f"the mapping has invalid fields: {', '.join(where)}") from exc


def mapping_yaml(mapping: Mapping) -> str:
    document = mapping.model_dump(mode="json", exclude_defaults=True)
    document["variables"] = {
        name: rule.model_dump(mode="json", exclude_defaults=True)
        for name, rule in mapping.variables.items()
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def save_mapping(home: Path, mapping: Mapping) -> Path:
    path = mapping_path(home, mapping.module, mapping.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(mapping_yaml(mapping), encoding="utf-8")
    tmp.replace(path)
    return path


def load_mapping(home: Path, name: str, version: int) -> Mapping:
    path = mapping_path(home, name, version)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MappingMissing(
            f"no mapping onto module {name} v{version} at this node (sauti node map draft)"
        ) from exc
    mapping = parse_mapping(text)
    if (mapping.module, mapping.version) != (name, version):
        raise MappingInvalid(f"the mapping file for {name} v{version} names another module")
    return mapping


def mappings(home: Path) -> list[Mapping]:
    folder = home / MAPPINGS
    return [
        parse_mapping(p.read_text(encoding="utf-8"))
        for p in (sorted(folder.glob("*.yaml")) if folder.is_dir() else [])
    ]
