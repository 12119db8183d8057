"""`promoter serve` serves the notebook and regenerates when the notebook is saved."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest

from tests.helpers import free_port, write_notebook

pytestmark = pytest.mark.slow


def _wait_for(url: str, check, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if check(httpx.post(url, json={}, timeout=5)):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered as expected")


def test_serve_reloads_on_save(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "greeter.ipynb",
        ("code", "name = 'world'", ["parameters"]),
        ("code", "{'greeting': f'hello {name}'}", ["response"]),
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "promoter", "serve", str(notebook), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/greeter"
    try:
        _wait_for(url, lambda r: r.json() == {"greeting": "hello world"})
        nb = nbformat.read(notebook, as_version=4)
        nb.cells[1].source = "{'greeting': f'hi {name}'}"
        nbformat.write(nb, notebook)
        _wait_for(url, lambda r: r.status_code == 200 and r.json() == {"greeting": "hi world"})
        nb.cells[1].source = "{'greeting': f'hi {name}'"  # a broken save keeps the old version
        nbformat.write(nb, notebook)
        time.sleep(3)
        assert httpx.post(url, json={}).json() == {"greeting": "hi world"}
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            _, stderr = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            _, stderr = server.communicate()
    assert b"Traceback" not in stderr


def test_a_busy_port_is_a_usage_error_before_the_notebook_runs(tmp_path: Path) -> None:
    import socket

    from tests.helpers import run_cli

    notebook = write_notebook(
        tmp_path / "greeter.ipynb",
        ("code", "name = 'world'", ["parameters"]),
        ("code", "{'greeting': f'hello {name}'}", ["response"]),
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", notebook, "--port", port, timeout=60)
    assert result.returncode == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}: another program uses the port" in result.stderr
    assert "--port" in result.stderr  # the hint
    assert "serving" not in result.output and "Traceback" not in result.output
