"""One inspect or convert run for the Jupyter server extension, in a process of its own.

The server (``promoter.frontends.jupyter``) starts
``python -m promoter.frontends.jupyter_worker``, writes one JSON request on its stdin and reads
JSON lines from its stdout: ``{"progress": [done, total]}`` while the kernel runs, then
``{"status": HTTP status, "result": reply}``. A process of its own is what makes Cancel real:
the server kills the worker and every process under it, the kernel included, which a thread
inside the server could not do.

Only these lines go to the real stdout; anything else printed (papermill, the kernel's warnings)
is sent to stderr so it cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, TextIO

import promoter
from promoter._exceptions import EditedFileError, PromoterError, UsageError

__all__ = ["main"]


def _protocol_stream() -> TextIO:
    """Keep the real stdout for the protocol and point fd 1 (and ``sys.stdout``) at stderr."""
    stream = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _error_reply(exc: PromoterError) -> dict[str, Any]:
    data = exc.to_dict()
    if isinstance(exc, EditedFileError):
        data["paths"] = list(exc.paths)
    return data


def _run(request: dict[str, Any], emit: Any) -> tuple[int, dict[str, Any]]:
    def progress(_name: str, done: int, total: int) -> None:
        emit({"progress": [done, total]})

    notebook = Path(request["path"])
    if request["action"] == "inspect":
        return 200, promoter.inspect(notebook, on_progress=progress).to_dict()
    conversion = promoter.convert(
        [notebook], Path(request["out_dir"]), force=request["force"], on_progress=progress
    )
    return 200, conversion.to_dict()


def main() -> None:
    """Answer the one request on stdin, then exit."""
    request = json.loads(sys.stdin.read())
    out = _protocol_stream()
    lock = threading.Lock()

    def emit(message: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(message, default=str) + "\n")
            out.flush()

    try:
        status, result = _run(request, emit)
    except UsageError as exc:
        status, result = 400, _error_reply(exc)
    except PromoterError as exc:
        status, result = 422, _error_reply(exc)
    except Exception as exc:
        status = 500
        result = {
            "error": "InternalError",
            "message": f"promoter failed unexpectedly: {type(exc).__name__}: {exc}",
            "hint": "see the Jupyter server log for the traceback",
            "traceback": traceback.format_exc(),
        }
    emit({"status": status, "result": result})


if __name__ == "__main__":
    main()
