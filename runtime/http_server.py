"""The HTTP/1.1 protocol a served app runs on: uvicorn's httptools server, with a bound.

httptools (llhttp, in C) parses a request for about a quarter of the CPU that h11 (pure
Python) takes: about 0.5 ms less per query at a node (docs/architecture.md, issue #25).
uvicorn's httptools protocol bounds nothing that the parser holds back, though: httptools
keeps a header line (or a trailer) whole until it ends, so a head that never ends grows the
server's memory and CPU unanswered, where h11 refuses any incomplete event past 16 KiB.
`BoundedHttpToolsProtocol` gives the httptools server h11's rule: no more than
`MAX_INCOMPLETE_BYTES` fed to the parser without it making progress (the end of a request
head, a piece of body, a chunk, the end of a message). A request head past the bound is
refused as h11 refuses it (400, "Invalid HTTP request received.", the connection closed);
a chunk line or trailer past it in a body the app is reading closes the connection (the
app sees the client gone), as a broken body does.

Pass the class as uvicorn's `http` (`uvicorn.run(app, http=BoundedHttpToolsProtocol)`).
"""

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

# h11's bound (h11.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE), which the servers used before.
MAX_INCOMPLETE_BYTES = 16 * 1024
INVALID_REQUEST = "Invalid HTTP request received."


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing input on which the parser makes no progress.

    Data is fed to the parser in pieces no longer than the room left under the bound; a
    piece after which the parser reported no progress counts whole towards it, a piece in
    which it did counts nothing (the bytes after that progress are at most one piece: an
    incomplete event is held to at most twice the bound, never more).
    """

    max_incomplete_bytes = MAX_INCOMPLETE_BYTES

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._stalled = 0  # bytes fed since the parser last made progress
        self._progress = 0  # progress events so far (compared around each piece)
        self._in_head = True  # between messages or inside a request head

    def data_received(self, data: bytes) -> None:
        while data:
            room = self.max_incomplete_bytes - self._stalled
            piece, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
            progress = self._progress
            super().data_received(piece)
            if self.parser is None or self.transport.is_closing():
                return  # refused (400) or gone
            if self._progress == progress:
                self._stalled += len(piece)
                if self._stalled >= self.max_incomplete_bytes:
                    self._refuse()
                    return

    def _refuse(self) -> None:
        if self._in_head:
            self.logger.warning(INVALID_REQUEST)
            self.send_400_response(INVALID_REQUEST)
        else:  # the app is reading this body: closing ends it (http.disconnect)
            self.transport.close()

    def _made_progress(self) -> None:
        self._progress += 1
        self._stalled = 0

    # Parser callbacks: each is progress.
    def on_headers_complete(self) -> None:
        self._in_head = False
        self._made_progress()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._made_progress()
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._made_progress()

    def on_chunk_complete(self) -> None:
        self._made_progress()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._made_progress()
        super().on_message_complete()
