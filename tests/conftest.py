"""Shared fixtures: generated services served by uvicorn, the examples converted once."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from tests.helpers import EXAMPLE_NAMES, EXAMPLES, Server, free_port, run_cli, wait_ready

# Every conversion proves its service in an environment built from the service's pins (uv):
# one cache for every test, worker and session (the CLI subprocesses inherit it), so a test
# reuses the environment of the same pins and only a new combination costs an install.
_CACHE = Path(tempfile.gettempdir()) / f"promoter-test-cache-{os.getuid()}"
os.environ.setdefault("PROMOTER_CACHE_DIR", str(_CACHE / "envs"))
os.environ.setdefault("UV_CACHE_DIR", str(_CACHE / "uv"))


@pytest.fixture
def serve_folder() -> Iterator[object]:
    """Start ``uvicorn app.main:app`` in a generated folder; stops it afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(folder: Path, workers: int = 1) -> Server:
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--workers", str(workers), "--log-level", "warning"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # These services are loaded to prove answers and isolation under concurrency (up to
            # 32 in flight on 2 slots), not shedding: a long wait queue keeps every request.
            # Shedding is tested on its own servers (test_runtime, test_service_security).
            env={**os.environ, "SERVICE_QUEUE_LENGTH": "1024"},
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        return Server(url, process)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each example notebook converted once per test run with the real CLI.

    The folder is shared by the xdist workers (the base temp folder's parent is common to all of
    them): the first worker to need the services converts them under a file lock, the others
    reuse them. Tests read and serve these folders; they never change them.
    """
    shared = tmp_path_factory.getbasetemp().parent / "shared-services"
    shared.mkdir(exist_ok=True)
    folders = {}
    with FileLock(str(shared / ".lock")):
        for name in EXAMPLE_NAMES:
            folder = shared / name
            if not (folder / "promoter.lock.json").is_file():
                # --generated 0: these tests compare the service with papermill for many
                # parameter sets themselves; generated values are tested in test_proof.
                notebook = EXAMPLES / f"{name}.ipynb"
                command = ("convert", notebook, "-o", folder, "--force", "--generated", "0")
                result = run_cli(*command, timeout=900)
                assert result.returncode == 0, result.output
            folders[name] = folder
    return folders
