"""Import, validate, bound and store dataset versions; list and load them."""

import hashlib
import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from contracts import signing
from contracts.v1 import Column, DatasetContract, DatasetInfo
from node.audit import service as audit
from node.datasets.exceptions import DatasetExists, DatasetInvalid, UnknownDataset
from node.datasets.schemas import LoadedDataset, Manifest
from node.db import transaction, url_for
from node.settings import NodeSettings

ROW_INDEX = "__sauti_row__"
DROPPED_ROLES = ("identifier", "free_text", "unit_key")
MAX_ROWS_NAMED = 10


def dataset_dir(home: Path, name: str) -> Path:
    return home / "datasets" / name


def import_frame(
    *,
    home: Path,
    contract: DatasetContract,
    frame: pl.DataFrame,
    settings: NodeSettings | None = None,
) -> DatasetInfo:
    """Validate `frame` against `contract` and store it as a new immutable version.

    Whole or nothing: the version is written to a temporary folder and renamed into place.
    """
    target = dataset_dir(home, contract.name) / f"v{contract.version}"
    if target.exists():
        raise DatasetExists(f"dataset {contract.name} version {contract.version} already exists")
    clean = _validate(contract, frame)
    clean = _bound_contributions(contract, clean)
    clean = clean.drop([c.name for c in contract.columns if c.role in DROPPED_ROLES], strict=False)
    contract_digest = signing.digest(contract)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=target.parent))
    try:
        parquet = tmp / "data.parquet"
        clean.write_parquet(parquet)
        manifest = Manifest(
            name=contract.name,
            version=contract.version,
            rows=clean.height,
            data_sha256=_sha256(parquet),
            contract_digest=contract_digest,
            created_at=datetime.now(UTC).isoformat(),
        )
        (tmp / "contract.json").write_text(contract.model_dump_json(indent=2))
        (tmp / "manifest.json").write_text(manifest.model_dump_json(indent=2))
        try:
            tmp.rename(target)
        except OSError as exc:
            raise DatasetExists(
                f"dataset {contract.name} version {contract.version} already exists"
            ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with transaction(url_for(home=home, settings=settings)) as session:
        # Name, version and digest only: the row count is exact and stays in the manifest.
        audit.append(
            session,
            actor="steward",
            action="dataset_imported",
            object=f"dataset:{contract.name}",
            details={"version": contract.version, "contract_digest": contract_digest},
        )
    return DatasetInfo(contract=contract, contract_digest=contract_digest)


def import_file(
    *, home: Path, contract: DatasetContract, path: Path, settings: NodeSettings | None = None
) -> DatasetInfo:
    """Import a plain CSV or Parquet export (Kobo/ODK importers come later)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # All text: the contract, not polars' guess, decides every column's type.
            frame = pl.read_csv(path, infer_schema=False)
        elif suffix in (".parquet", ".pq"):
            frame = pl.read_parquet(path)
        else:
            raise DatasetInvalid("only .csv and .parquet files can be imported for now")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DatasetInvalid("the file cannot be read as a table") from exc
    return import_frame(home=home, contract=contract, frame=frame, settings=settings)


def list_datasets(*, home: Path) -> list[DatasetInfo]:
    """Every stored version of every dataset, by name then version."""
    root = home / "datasets"
    if not root.exists():
        return []
    infos = []
    for folder in sorted(root.iterdir()):
        for version in _versions(folder):
            contract = _read_contract(folder / f"v{version}")
            infos.append(DatasetInfo(contract=contract, contract_digest=signing.digest(contract)))
    return infos


def load(*, home: Path, name: str, version: int | None = None) -> LoadedDataset:
    """One stored version (the latest if `version` is None)."""
    folder = dataset_dir(home, name)
    versions = _versions(folder) if folder.parent.exists() and folder.exists() else []
    if version is None and versions:
        version = versions[-1]
    if version is None or version not in versions:
        raise UnknownDataset("no such dataset version at this node")
    vdir = folder / f"v{version}"
    manifest = Manifest.model_validate_json((vdir / "manifest.json").read_text())
    return LoadedDataset(
        contract=_read_contract(vdir),
        contract_digest=manifest.contract_digest,
        parquet_path=vdir / "data.parquet",
        data_sha256=manifest.data_sha256,
    )


def _versions(folder: Path) -> list[int]:
    found = []
    for child in folder.iterdir():
        if child.name.startswith("v") and child.name[1:].isdigit() and child.is_dir():
            found.append(int(child.name[1:]))
    return sorted(found)


def _read_contract(vdir: Path) -> DatasetContract:
    return DatasetContract.model_validate(json.loads((vdir / "contract.json").read_text()))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rows(mask: pl.Series) -> str:
    """Row numbers (1-based, as in the file) of a boolean mask: positions, never values."""
    rows = [i + 1 for i in mask.arg_true().to_list()]
    shown = ", ".join(str(r) for r in rows[:MAX_ROWS_NAMED])
    more = f" and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else ""
    return f"rows {shown}{more}"


def _validate(contract: DatasetContract, frame: pl.DataFrame) -> pl.DataFrame:
    missing = [c.name for c in contract.columns if c.name not in frame.columns]
    if missing:
        raise DatasetInvalid(f"columns missing from the import: {', '.join(missing)}")
    problems: list[str] = []
    out: dict[str, pl.Series] = {}
    for column in contract.columns:
        series, problem = _cast_column(column, frame.get_column(column.name))
        if problem:
            problems.append(problem)
        if series is not None and not column.nullable and series.null_count():
            problems.append(f"column {column.name}: missing values at {_rows(series.is_null())}")
        if series is not None:
            out[column.name] = series
    if problems:
        raise DatasetInvalid("; ".join(problems))
    return pl.DataFrame(out)


def _cast_column(column: Column, raw: pl.Series) -> tuple[pl.Series | None, str | None]:
    name = column.name
    if column.role in ("identifier", "free_text"):
        return raw, None
    if column.type == "categorical":
        text = raw.cast(pl.String, strict=False)
        bad = text.is_not_null() & ~text.is_in(list(column.level_codes))
        if bad.any():
            return None, f"column {name}: values outside the contract's levels at {_rows(bad)}"
        return text.cast(pl.Enum(list(column.level_codes))), None
    if column.type in ("integer", "number"):
        dtype: type[pl.DataType] = pl.Int64 if column.type == "integer" else pl.Float64
        source = raw.str.strip_chars() if raw.dtype == pl.String else raw
        if source.dtype == pl.String:
            source = source.replace("", None)
        cast = source.cast(dtype, strict=False)
        unparsable = cast.is_null() & source.is_not_null()
        if unparsable.any():
            return None, f"column {name}: values that are not {column.type}s at {_rows(unparsable)}"
        if column.lower is not None and column.upper is not None:
            out = cast.is_not_null() & ((cast < column.lower) | (cast > column.upper))
            if out.any():
                return None, f"column {name}: values outside the contract's bounds at {_rows(out)}"
        return cast, None
    if column.type == "datetime":
        if raw.dtype == pl.String:
            parsed = raw.str.to_datetime(strict=False)
            unparsable = parsed.is_null() & raw.is_not_null()
            if unparsable.any():
                return None, f"column {name}: values that are not datetimes at {_rows(unparsable)}"
            return parsed, None
        return raw, None
    return raw.cast(pl.String, strict=False), None


def _bound_contributions(contract: DatasetContract, frame: pl.DataFrame) -> pl.DataFrame:
    """Keep at most `max_contributions` rows per unit (the first ones, in file order).

    This is what makes the L2 sensitivity of every count vector at most max_contributions:
    adding or removing one unit adds or removes at most that many rows.
    """
    unit = contract.privacy.unit_key
    if unit is None:
        return frame  # each row is its own unit, contributing one row
    k = contract.privacy.max_contributions
    return (
        frame.with_row_index(ROW_INDEX)
        .filter(pl.int_range(pl.len()).over(unit) < k)
        .sort(ROW_INDEX)
        .drop(ROW_INDEX)
    )
