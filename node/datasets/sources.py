"""Recognise an uploaded file (kind, encoding, delimiter), check its size, and normalise text.

Text tables are re-encoded once, in bounded chunks, to a UTF-8 file without a BOM so every
later pass (ragged-row check, polars scan) reads one encoding. The SHA-256 of the file as
received is computed in the same pass. The UTF-8 copy is written zstd-compressed: polars
reads a plain local CSV into memory whole before streaming it, but decompresses a
compressed one block by block, so compression keeps every later pass's memory bounded
(and the working copy of a 2 GB upload small).
"""

import codecs
import csv
import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import charset_normalizer
import pyarrow as pa  # type: ignore[import-untyped]  # no stubs; pinned in pyproject

from node.datasets.exceptions import FileTooLarge, FileUnreadable
from node.datasets.file_format import FileFormat

CHUNK = 1 << 20
SNIFF_BYTES = 1 << 16
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls
DELIMITERS = (",", ";", "\t", "|")
# What CSO exports are actually saved in. Anything else is refused with a hint rather than
# guessed: a wrong guess silently corrupts Devanagari or Bengali text.
WESTERN_SINGLE_BYTE = {"cp1252", "latin_1", "iso8859_15", "iso8859_1", "windows_1252"}
LATIN_LOOKALIKES = {
    "cp1250",
    "cp1257",
    "iso8859_2",
    "iso8859_13",
    "iso8859_16",
    "mac_roman",
    "mac_latin2",
    "cp1254",
    "iso8859_9",
}
Progress = Callable[[str, int, int], None]


COMPRESSION = "zstd"


@dataclass(frozen=True)
class TextTable:
    """A delimited text file normalised to UTF-8 (zstd-compressed: see open_normalised)."""

    path: Path
    encoding: str
    delimiter: str


@dataclass
class Received:
    """A file as received: its kind from its first bytes, size and digest."""

    path: Path
    kind: str  # "text" | "xlsx" | "parquet" | "zip"
    size: int
    sha256: str = ""
    notes: list[str] = field(default_factory=list)


def check_size(path: Path, *, max_bytes: int) -> int:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FileUnreadable(f"cannot read {path.name}") from exc
    if size > max_bytes:
        raise FileTooLarge(
            f"{path.name} is larger than this node's import limit of {max_bytes} bytes"
            " (NODE_IMPORT_MAX_BYTES)"
        )
    if size == 0:
        raise FileUnreadable(f"{path.name} is empty")
    return size


def sniff(path: Path, *, fmt: FileFormat | None, max_bytes: int) -> Received:
    """Kind of file from its bytes; refuse a file that is not what its extension or format says."""
    size = check_size(path, max_bytes=max_bytes)
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        kind = "xlsx" if _is_xlsx(path) else "zip"
    elif head.startswith(PARQUET_MAGIC):
        kind = "parquet"
    elif head.startswith(OLE_MAGIC):
        raise FileUnreadable(
            f"{path.name} is a legacy Excel (.xls) workbook: save it as .xlsx or CSV"
        )
    else:
        kind = "text"
    suffix = path.suffix.lower()
    expected = {".xlsx": "xlsx", ".parquet": "parquet", ".pq": "parquet", ".zip": "zip"}.get(
        suffix, "text" if suffix in (".csv", ".tsv", ".txt") else None
    )
    if expected is not None and expected != kind:
        raise FileUnreadable(
            f"{path.name} is not what its extension says: its content is {_kind_name(kind)}"
        )
    allowed = {
        "csv": ("text",),
        "xlsx": ("xlsx",),
        "parquet": ("parquet",),
        "kobo": ("text", "xlsx"),
        "odk": ("text", "zip"),
        None: ("text", "xlsx", "parquet", "zip"),
    }[fmt]
    if kind not in allowed:
        raise FileUnreadable(
            f"{path.name} is {_kind_name(kind)}, which format {fmt or 'auto'} does not read"
        )
    return Received(path=path, kind=kind, size=size)


def _kind_name(kind: str) -> str:
    return {
        "text": "a text file",
        "xlsx": "an Excel workbook",
        "parquet": "a Parquet file",
        "zip": "a zip archive",
    }[kind]


def _is_xlsx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return "xl/workbook.xml" in z.namelist()
    except zipfile.BadZipFile:
        return False


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def detect_encoding(sample: bytes, *, name: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM or NUL pattern) or Windows-1252; else refuse."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if sample[:200].count(b"\x00") > len(sample[:200]) // 4:
        # UTF-16 without a BOM: every other byte of ASCII text is NUL.
        return "utf-16-le" if sample[1:2] == b"\x00" else "utf-16-be"
    if b"\x00" in sample:
        raise FileUnreadable(f"{name} holds binary data, not a text table")
    try:
        # A cut multi-byte character at the sample's end is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(sample).best()
    guess = best.encoding if best is not None else None
    if guess in WESTERN_SINGLE_BYTE or (guess in LATIN_LOOKALIKES and _decodes(sample, "cp1252")):
        # Short samples of Windows-1252 text are often guessed as a sibling Latin code page.
        return "cp1252"
    hint = f" (it looks like {guess})" if guess else ""
    raise FileUnreadable(
        f"the encoding of {name} is not UTF-8, UTF-16 or Windows-1252{hint}:"
        " save it as UTF-8, or name the encoding with --encoding"
    )


def _decodes(sample: bytes, encoding: str) -> bool:
    try:
        sample.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def normalise_text(
    received: Received,
    *,
    out: Path,
    encoding: str | None = None,
    delimiter: str | None = None,
    progress: Progress | None = None,
) -> TextTable:
    """Re-encode to UTF-8 (no BOM, newlines kept) and find the delimiter from the header."""
    path = received.path
    with path.open("rb") as f:
        sample = f.read(SNIFF_BYTES)
    enc = encoding or detect_encoding(sample, name=path.name)
    try:
        decoder = codecs.getincrementaldecoder(enc)(errors="strict")
    except LookupError as exc:
        raise FileUnreadable("unknown encoding name given with --encoding") from exc
    plain_utf8 = codecs.lookup(enc).name == "utf-8"
    digest = hashlib.sha256()
    done = 0
    first = True
    try:
        with path.open("rb") as src, pa.output_stream(str(out), compression=COMPRESSION) as dst:
            for block in iter(lambda: src.read(CHUNK), b""):
                digest.update(block)
                text = decoder.decode(block)
                if plain_utf8:
                    # Already UTF-8 and now known valid: copy the bytes, skip re-encoding.
                    dst.write(
                        block[len(codecs.BOM_UTF8) :] if first and text[:1] == "\ufeff" else block
                    )
                    first = first and not text
                else:
                    if first and text.startswith("\ufeff"):
                        text = text[1:]
                    first = first and not text
                    dst.write(text.encode("utf-8"))
                done += len(block)
                if progress is not None:
                    progress("reading", done, received.size)
            dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FileUnreadable(
            f"{path.name} is not valid {enc} text at byte {done + exc.start}:"
            " save it as UTF-8, or name the encoding with --encoding"
        ) from exc
    received.sha256 = digest.hexdigest()
    with open_normalised(out) as raw:
        header = io.TextIOWrapper(raw, encoding="utf-8", newline="").readline()
    if "\x00" in header or not header.strip():
        raise FileUnreadable(f"{path.name} has no header row")
    return TextTable(path=out, encoding=enc, delimiter=delimiter or sniff_delimiter(header))


def open_normalised(path: Path) -> pa.NativeFile:
    """The UTF-8 bytes of a file normalise_text wrote, decompressed as they are read."""
    return pa.input_stream(str(path), compression=COMPRESSION)


def sniff_delimiter(header: str) -> str:
    """The delimiter the header line uses most (outside quotes); a comma if none is found."""
    counts = {}
    for candidate in DELIMITERS:
        try:
            counts[candidate] = len(next(csv.reader([header], delimiter=candidate))) - 1
        except (csv.Error, StopIteration):
            counts[candidate] = 0
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","
