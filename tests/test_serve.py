"""`promoter serve` serves the notebook and regenerates when the notebook is saved."""

import contextlib
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
        # The server restarts after the failed regeneration: on a loaded machine it may still be
        # starting, so wait for it to answer, then check it answers the previous version.
        _wait_for(url, lambda r: r.status_code == 200)
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


def _alive_with(marker: str) -> int:
    import psutil

    return sum(
        1
        for p in psutil.process_iter(["cmdline", "status"])
        if marker in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
    )


def _settle(marker: str, wanted: int) -> int:
    """The number of live processes with ``marker``, once it reached ``wanted`` (or gave up)."""
    for _ in range(100):
        if _alive_with(marker) == wanted:
            break
        time.sleep(0.1)
    return _alive_with(marker)


def test_a_reload_stops_what_the_previous_setup_started(tmp_path: Path) -> None:
    import random

    marker = f"600.{random.randrange(10**8):08d}"
    setup = (
        "import subprocess, threading, time\n"
        f"helper = subprocess.Popen(['sleep', '{marker}'])\n"
        f"threading.Thread(target=time.sleep, args=({marker},)).start()"
    )
    notebook = write_notebook(
        tmp_path / "helper.ipynb",
        ("code", setup, []),
        ("code", "name = 'world'", ["parameters"]),
        ("code", "{'greeting': f'hello {name}'}", ["response"]),
    )
    port = free_port()
    log = tmp_path / "serve.log"
    # To a file: a helper left running would hold a pipe open, and the test would hang on it.
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "promoter", "serve", str(notebook), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/helper"
    try:
        _wait_for(url, lambda r: r.json() == {"greeting": "hello world"})
        # The running server's helper; the kernel's and the verifier's ended with them.
        assert _settle(marker, 1) == 1
        nb = nbformat.read(notebook, as_version=4)
        nb.cells[2].source = "{'greeting': f'hi {name}'}"
        nbformat.write(nb, notebook)
        _wait_for(url, lambda r: r.status_code == 200 and r.json() == {"greeting": "hi world"})
        assert _settle(marker, 1) == 1  # the new server's helper only
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert _settle(marker, 0) == 0
    assert b"Traceback" not in log.read_bytes()


def test_the_server_stops_when_promoter_serve_is_killed(tmp_path: Path) -> None:
    # Regression: the reloadable server runs in a process group of its own, so a SIGKILL of
    # `promoter serve` left it answering on its port with no parent (a test run hung on it).
    notebook = write_notebook(
        tmp_path / "orphan.ipynb",
        ("code", "name = 'world'", ["parameters"]),
        ("code", "{'greeting': f'hello {name}'}", ["response"]),
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "promoter", "serve", str(notebook), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/orphan"
    try:
        _wait_for(url, lambda r: r.status_code == 200)
        server.kill()  # only `promoter serve`, not its server's process group
        server.wait(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.post(url, json={}, timeout=2)
            except httpx.TransportError:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the server still answers after promoter serve was killed")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
