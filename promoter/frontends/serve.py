"""Serve a notebook as a service while it is being edited (``promoter serve``).

The notebook is converted into a temporary folder and served by uvicorn in a child process.
``watchfiles.run_process`` watches the notebook's folder: on each save its callback
regenerates the service (while the old server still answers), then it restarts the server on
the folder. Conversion is atomic, so a save that breaks the notebook is reported and the
restarted server serves the previous version.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promoter._api import convert
from promoter._exceptions import PromoterError, UsageError
from promoter.running.processes import ProcessGroup

__all__ = ["serve"]

# How often the server checks that `promoter serve` is still there, and how long it then has to
# stop by itself before it is ended.
_PARENT_POLL_SECONDS = 0.5
_STOP_GRACE_SECONDS = 10.0
#: The generated service's HTTP protocol (a deadline for each request head, a connection cap).
_GUARDED_PROTOCOL = "app.runtime.connections:GuardedH11Protocol"


def serve(
    path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    reload: bool = True,
    timeout: float | None = 600,
    on_event: Callable[[str], None] = print,
) -> None:
    """Convert ``path`` and serve it with uvicorn until interrupted.

    Raises:
        UsageError: The notebook does not exist, or the port is taken.
        PromoterError: The first conversion failed (later failures are reported instead).
    """
    from watchfiles import run_process

    notebook = Path(path).resolve()
    if not notebook.is_file():
        raise UsageError(f"no such notebook: {path}")
    _check_port(host, port)
    with tempfile.TemporaryDirectory(prefix="promoter-serve-") as tmp:
        out = Path(tmp) / "service"
        result = convert([notebook], out, timeout=timeout)
        routes = ", ".join(result.routes)
        on_event(f"serving POST {routes} on http://{host}:{port} (OpenAPI UI at /docs)")
        if not reload:
            _serve_folder(str(out), host, port)
            return

        def regenerate(_changes: Any) -> None:
            on_event(f"{notebook.name} changed: regenerating")
            try:
                convert([notebook], out, timeout=timeout)
            except PromoterError as exc:
                on_event(f"error: {exc}\n  still serving the previous version")
                return
            on_event("reloaded")

        # Editors save by writing a temporary file and renaming it: watch the folder.
        run_process(
            notebook.parent,
            target=_serve_reloadable,
            args=(str(out), host, port),
            target_type="function",
            callback=regenerate,
            watch_filter=lambda _, changed: Path(changed).name == notebook.name,
        )


def _check_port(host: str, port: int) -> None:
    """Refuse a port another program listens on, before the notebook runs."""
    with socket.socket() as probe:
        # As uvicorn binds: a port in TIME_WAIT is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            taken = exc.errno == errno.EADDRINUSE
            raise UsageError(
                f"cannot listen on {host}:{port}: "
                + ("another program uses the port" if taken else str(exc.strerror)),
                hint="pick another port with --port",
            ) from None


def _serve_reloadable(folder: str, host: str, port: int) -> None:
    """``_serve_folder`` in a child process that ``run_process`` restarts on each save."""
    # Its own process group: Ctrl+C reaches only `promoter serve`, which then stops this server
    # once (watchfiles sends SIGINT); a second SIGINT would make uvicorn abort mid-shutdown.
    os.setpgid(0, 0)
    group = ProcessGroup.of(os.getpid())
    _follow_parent(os.getppid(), group)
    try:
        _serve_folder(folder, host, port)
    finally:
        # What the service's setup started (a child process, a server) stops with it: a reload
        # must not leave the previous version's running.
        if group is not None:
            group.kill(spare=os.getpid())
    # Nor may a non-daemon thread of setup's keep the stopped server alive.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _follow_parent(parent: int, group: ProcessGroup | None) -> None:
    """Stop this server when ``promoter serve`` is gone, however it went.

    Its own process group keeps Ctrl+C from reaching it twice, but also keeps a ``kill -9`` of
    the session (or a crash of ``promoter serve``) from reaching it: without this watch the
    server went on answering on its port with no parent, and a test run hung on it.
    """

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(_PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGINT)  # uvicorn's own graceful stop
        threading.Event().wait(_STOP_GRACE_SECONDS)
        if group is not None:
            group.kill(spare=os.getpid())
        os._exit(1)

    threading.Thread(target=watch, name="promoter-serve-parent", daemon=True).start()


def _serve_folder(folder: str, host: str, port: int) -> None:
    """Run uvicorn on a generated service, with the service folder as working directory."""
    import uvicorn

    os.chdir(folder)
    sys.path.insert(0, folder)
    # As the image runs it: a deadline for each request head, a cap on connections.
    uvicorn.run("app.main:app", host=host, port=port, http=_GUARDED_PROTOCOL)
