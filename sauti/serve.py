"""Run an ASGI app on a real localhost socket in a background thread (demo and e2e tests)."""

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from runtime.http_server import BoundedHttpToolsProtocol

STARTUP_TIMEOUT_SECONDS = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 30.0


class ServerError(RuntimeError):
    """The server did not start, or did not stop, in time."""


@dataclass(frozen=True)
class ServerHandle:
    """A running server: its base URL (no trailing slash) and what runs it."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    log_level: str = "warning",
    access_log: bool = False,
    http: type[asyncio.Protocol] | str = BoundedHttpToolsProtocol,
) -> Iterator[ServerHandle]:
    """Serve `app` on a free port of `host` until the block exits, then stop and join.

    `http` is uvicorn's HTTP protocol: by default httptools with h11's bound on an unfinished
    head (`runtime.http_server`), as `sauti hub serve` and `sauti node serve` run.

    The socket is bound before the server starts, so the port is known and owned by us:
    no window in which another process could take a port we picked.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            # Whoever runs the servers configures logging (the demo: data-free); uvicorn's
            # own configuration would print tracebacks with SQL parameters.
            log_config=None,
            log_level=log_level,
            lifespan="on",
            access_log=access_log,
            # Keep-alive clients must not hold the shutdown (and the thread join) hostage.
            timeout_graceful_shutdown=5,
            # Not uvicorn's own httptools server: it bounds no request head, so an endless header
            # would grow the server's memory and CPU unanswered (docs/architecture.md).
            http=http,
        )
        server = uvicorn.Server(config)
        # uvicorn only installs signal handlers on the main thread, so none are touched here.
        thread = threading.Thread(
            target=_run, args=(server, sock), name=f"uvicorn-{port}", daemon=True
        )
        thread.start()
        handle = ServerHandle(url=f"http://{host}:{port}", server=server, thread=thread)
        try:
            _wait_started(handle)
            yield handle
        finally:
            server.should_exit = True
            thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            if thread.is_alive():
                raise ServerError(f"the server on port {port} did not stop in time")
    finally:
        sock.close()


def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    # uvicorn calls sys.exit when the app's startup fails; in a thread that must end the
    # thread quietly, and the caller reports it as ServerError.
    with contextlib.suppress(SystemExit):
        server.run(sockets=[sock])


def _wait_started(handle: ServerHandle) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not handle.server.started:
        if not handle.thread.is_alive() or time.monotonic() > deadline:
            raise ServerError("the server did not start (its log names the startup error)")
        time.sleep(0.01)
