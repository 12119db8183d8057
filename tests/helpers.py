"""Shared test helpers: real notebooks, the real CLI, real uvicorn servers on 127.0.0.1.

Test modules import these; ``conftest.py`` holds only the fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import nbformat

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "notebooks"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLE_NAMES = ["iris_classifier", "text_statistics", "loan_calculator", "shipping_quote"]


@dataclass
class CliResult:
    """What a run of the real console script printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> CliResult:
    """Run ``promoter ARGS`` as a subprocess, the way a user does (``env`` added to ours).

    The command runs in a session of its own, killed whole when the call ends however it ends
    (its timeout, or pytest-timeout interrupting the test): a kernel or a service it started
    never outlives the test.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "promoter", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})},
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return CliResult(proc.returncode, stdout, stderr)


def git(repo: Path, *args: str) -> None:
    """Run git in ``repo`` with a throwaway identity (tests build their own repositories)."""
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A generated service running under uvicorn."""

    url: str
    process: subprocess.Popen[bytes]


def wait_ready(url: str, process: subprocess.Popen[bytes], limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited during start-up"
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the service did not become ready")


def write_notebook(
    path: Path, *cells: tuple[str, str, list[str]], metadata: dict | None = None
) -> Path:
    """Write a notebook from (kind, source, tags) triples, as Jupyter would save it."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    if metadata:
        nb.metadata["promoter"] = metadata
    for kind, source, tags in cells:
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def golden(folder: Path) -> dict:
    path = next((folder / "tests" / "golden").glob("*.json"))
    return json.loads(path.read_text())


def send_json(handler: BaseHTTPRequestHandler, answer: object) -> None:
    """Answer a stub server's request with ``answer`` as JSON (200)."""
    body = json.dumps(answer).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
