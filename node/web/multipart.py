"""A browser form with files, streamed to disk as it arrives, under the node's import limit.

Starlette's form parser spools every file part to a temporary file before a route sees it,
so an upload far over `NODE_IMPORT_MAX_BYTES` would fill a disk before any check. This
parser (python-multipart's, driven chunk by chunk from the request stream) writes each
expected file part straight into the staging folder and stops at the limit, keeps small
text fields in memory (capped), and asks `before_file` about the fields received so far
before the first byte of a file is written: the CSRF check runs before any data lands, which
is why every upload form puts its `csrf_token` field first.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from node.datasets.exceptions import FileTooLarge
from node.datasets.uploads import part_path
from node.web.exceptions import FormInvalid

MAX_FIELD_BYTES = 256 * 1024  # all text fields together
MAX_PARTS = 2000


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    def all(self, prefix: str) -> dict[str, str]:
        """Fields named `prefix<key>`, by key (one per column in the draft review form)."""
        return {k[len(prefix) :]: v for k, v in self.fields.items() if k.startswith(prefix)}


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    target: Path | None = None
    handle: IO[bytes] | None = None
    size: int = 0
    data: bytearray = field(default_factory=bytearray)


class _Receiver:
    """python-multipart's callbacks: each part's headers, then its bytes, to memory or disk."""

    def __init__(
        self,
        *,
        folder: Path,
        files: Mapping[str, str],
        limit: int,
        before_file: Callable[[Mapping[str, str]], None],
        form: Form,
    ) -> None:
        self.folder, self.files, self.limit, self.before_file = folder, files, limit, before_file
        self.form = form
        self.part = _Part()
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.text_bytes = 0
        self.parts = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise FormInvalid("the form has too many fields")
        self.part = _Part()

    def on_header_end(self) -> None:
        name = self.header_field.decode("latin-1").lower()
        self.part.headers[name] = self.header_value.decode("utf-8", "replace")
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        part = self.part
        part.name, part.filename = _disposition(part.headers.get("content-disposition", ""))
        if part.filename is not None and part.name not in self.files:
            raise FormInvalid(f"the form has no file field {part.name}")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part, chunk = self.part, data[start:end]
        if part.filename is None:
            self.text_bytes += len(chunk)
            if self.text_bytes > MAX_FIELD_BYTES:
                raise FormInvalid("the form's text fields are too long")
            part.data.extend(chunk)
            return
        if not chunk or not part.filename:
            return  # a file input left empty sends a part with no name and no bytes
        if part.handle is None:
            self.before_file(self.form.fields)
            part.target = part_path(self.folder, self.files[part.name], part.filename)
            part.handle = part.target.open("wb")
        part.size += len(chunk)
        if part.size > self.limit:
            raise FileTooLarge(
                f"the upload is larger than this node's import limit of {self.limit} bytes"
            )
        part.handle.write(chunk)

    def on_part_end(self) -> None:
        part = self.part
        if part.filename is None:
            try:
                self.form.fields[part.name] = part.data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FormInvalid(f"the field {part.name} is not UTF-8 text") from exc
        elif part.handle is not None and part.target is not None:
            part.handle.close()
            self.form.files[part.name] = part.target

    def close(self) -> None:
        if self.part.handle is not None and not self.part.handle.closed:
            self.part.handle.close()


def _disposition(value: str) -> tuple[str, str | None]:
    _kind, params = parse_options_header(value)
    name = params.get(b"name", b"").decode("utf-8", errors="replace")
    raw = params.get(b"filename")
    return name, None if raw is None else raw.decode("utf-8", errors="replace")


async def receive(
    request: Request,
    *,
    folder: Path,
    files: Mapping[str, str],
    limit: int,
    before_file: Callable[[Mapping[str, str]], None],
    form: Form | None = None,
) -> Form:
    """Read a multipart form: file fields named in `files` (field -> staging part) go to
    `folder`, other file parts are refused, text fields are returned (into `form`, if given,
    which keeps the fields read before a refusal, to show the form again as typed)."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise FormInvalid("the form must be sent as multipart/form-data")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > len(files) * limit + MAX_FIELD_BYTES:
        raise FileTooLarge(f"the upload is larger than this node's import limit of {limit} bytes")
    receiver = _Receiver(
        folder=folder, files=files, limit=limit, before_file=before_file, form=form or Form()
    )
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise FormInvalid("the form could not be read (a broken upload?)") from exc
    finally:
        receiver.close()
    return receiver.form
