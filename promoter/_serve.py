"""Serve a notebook as a service while it is being edited (``promoter serve``).

The notebook is converted into a temporary folder and served by uvicorn in a child process;
watchfiles reports each save, the service is regenerated, and uvicorn restarts on the new code.
A save that breaks the notebook is reported and the previous version keeps serving.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from promoter._api import convert
from promoter._exceptions import PromoterError, UsageError

__all__ = ["serve"]


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
        PromoterError: The first conversion failed (later failures are reported instead).
    """
    notebook = Path(path).resolve()
    if not notebook.is_file():
        raise UsageError(f"no such notebook: {path}")
    with tempfile.TemporaryDirectory(prefix="promoter-serve-") as tmp:
        out = Path(tmp) / "service"
        result = convert([notebook], out, timeout=timeout)
        # One slot, so a reload can swap the running server for a new one.
        server = [_start(out, host, port)]
        routes = ", ".join(result.routes)
        on_event(f"serving POST {routes} on http://{host}:{port} (OpenAPI UI at /docs)")
        try:
            if reload:
                _watch(notebook, out, host, port, timeout, on_event, server)
            else:
                server[0].wait()
        finally:
            _stop(server[0])


def _watch(
    notebook: Path,
    out: Path,
    host: str,
    port: int,
    timeout: float | None,
    on_event: Callable[[str], None],
    server: list[subprocess.Popen[bytes]],
) -> None:
    from watchfiles import watch

    # Editors save by writing a temporary file and renaming it: watch the folder, not the file.
    for _ in watch(notebook.parent, watch_filter=lambda _, p: Path(p).name == notebook.name):
        on_event(f"{notebook.name} changed: regenerating")
        try:
            convert([notebook], out, timeout=timeout)
        except PromoterError as exc:
            on_event(f"error: {exc}\n  still serving the previous version")
            continue
        _stop(server[0])
        server[0] = _start(out, host, port)
        on_event("reloaded")


def _start(folder: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", host]
    return subprocess.Popen([*command, "--port", str(port)], cwd=folder)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
