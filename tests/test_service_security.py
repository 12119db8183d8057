"""The generated service against a hostile client and a mistaken operator (issue 23).

One notebook, converted once; each test starts the service as its image does (the Dockerfile's
``CMD``, bound to 127.0.0.1 and a free port) with the environment of its case, and speaks to
it over real sockets: keys that fail closed, settings errors that never echo a value, bounded
metric labels, slow-header clients disconnected, an escaped page title, and a request that
asks for more memory than there is answered with 507 while the service keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, run_cli, wait_ready, write_notebook

pytestmark = pytest.mark.slow

TITLE = "</title><script>alert(1)</script> Totals"
SECRET = "s3cret-key-Qx7"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    notebook = write_notebook(
        root / "totals.ipynb",
        ("markdown", f"# {TITLE}\n\nSums of ones.", []),
        ("code", "import numpy as np", []),
        ("code", "n: int = 10  # how many ones", ["parameters"]),
        ("code", "total = float(np.ones(n).sum())", []),
        ("code", "{'total': total}", ["response"]),
    )
    out = root / "service"
    result = run_cli("convert", notebook, "-o", out)
    assert result.returncode == 0, result.output
    assert "request field 'n' sizes `np.ones(n)` with no upper bound" in " ".join(
        result.output.split()
    )
    return out


@pytest.fixture(scope="module")
def process_service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same sums, run in worker processes (pebble), forked once the setup has run."""
    root = tmp_path_factory.mktemp("process")
    notebook = write_notebook(
        root / "ones.ipynb",
        ("code", "import numpy as np", []),
        ("code", "n: int = 10  # how many ones", ["parameters"]),
        ("code", "total = float(np.ones(n).sum())", []),
        ("code", "{'total': total}", ["response"]),
        metadata={"execution": "process"},
    )
    out = root / "service"
    result = run_cli("convert", notebook, "-o", out)
    assert result.returncode == 0, result.output
    return out


def _command(service: Path, port: int) -> list[str]:
    """The image's CMD, on 127.0.0.1 and ``port``, with this interpreter's uvicorn."""
    (command,) = [
        json.loads(line.removeprefix("CMD "))
        for line in (service / "Dockerfile").read_text().splitlines()
        if line.startswith("CMD ")
    ]
    assert command[0] == "uvicorn"
    command = [sys.executable, "-m", *command]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    return command


class Started:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log


@pytest.fixture
def start(service: Path, tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def run(
        env: dict[str, str],
        *,
        files: int | None = None,
        ready: bool = True,
        folder: Path | None = None,
    ) -> Started:
        def limits() -> None:
            if files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

        port = free_port()
        log = tmp_path / f"service-{port}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                _command(folder or service, port),
                cwd=folder or service,
                env={**os.environ, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=limits,
            )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        if ready:
            wait_ready(url, process)
        return Started(process, url, log)

    yield run
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _refused(start, env: dict[str, str]) -> str:
    server = start(env, ready=False)
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the service started with a broken setting")
    assert server.process.returncode != 0
    return server.log.read_text(errors="replace")


# -- keys that fail closed ----------------------------------------------------------------------


@pytest.mark.parametrize("keys", ['[""]', '["ok", " "]', "", " , ", "[]"])
def test_a_set_api_keys_variable_with_an_empty_key_stops_the_start(start, keys: str) -> None:
    output = _refused(start, {"SERVICE_API_KEYS": keys})

    assert "SERVICE_API_KEYS" in output or "api_keys" in output
    assert "empty" in output or "no key" in output


def test_malformed_settings_never_echo_their_values(start) -> None:
    output = _refused(start, {"SERVICE_API_KEYS": f'["{SECRET}", "other-{SECRET}"'})
    assert "api_keys" in output or "SERVICE_API_KEYS" in output
    assert SECRET not in output

    output = _refused(start, {"SERVICE_MAX_BODY_BYTES": f"{SECRET}"})
    assert "max_body_bytes" in output
    assert SECRET not in output


def test_keys_still_guard_the_routes(start) -> None:
    server = start({"SERVICE_API_KEYS": f"{SECRET},second"})

    assert httpx.post(f"{server.url}/totals", json={}, timeout=30).status_code == 401
    empty = {"X-API-Key": ""}
    assert httpx.post(f"{server.url}/totals", json={}, headers=empty, timeout=30).status_code == 401
    good = {"X-API-Key": SECRET}
    assert httpx.post(f"{server.url}/totals", json={}, headers=good, timeout=30).status_code == 200


# -- bounded metric labels ----------------------------------------------------------------------


def test_made_up_methods_count_as_one_label_value(start) -> None:
    server = start({"SERVICE_API_KEYS": SECRET})
    with httpx.Client(timeout=30) as client:
        for i in range(60):
            client.request(f"BREW{i}", f"{server.url}/totals")
            client.request(f"X{i}", f"{server.url}/nowhere/{i}")
        client.get(f"{server.url}/health")
        metrics = client.get(f"{server.url}/metrics").text

    methods = {
        line.split('method="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("http_requests_total{")
    }
    assert methods == {"<other>", "GET"}, methods


# -- slow-header clients ------------------------------------------------------------------------


def _slow_clients(url: str, count: int) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    clients = []
    for _ in range(count):
        try:
            client = socket.create_connection((host, int(port)), timeout=5)
            client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            break  # the server may close some at once (the cap), or the kernel queue is full
        clients.append(client)
    return clients


def _trickle(clients: list[socket.socket]) -> None:
    for client in clients:
        with contextlib.suppress(OSError):
            client.sendall(b"X-Slow: 1\r\n")


def _closed_by_server(client: socket.socket, patience: float) -> bool:
    """Whether the server closes ``client`` while it keeps trickling header lines."""
    client.settimeout(0.2)
    end = time.monotonic() + patience  # a bound on the wait, not an assertion on time
    while time.monotonic() < end:
        try:
            if client.recv(1024) == b"":
                return True
        except TimeoutError:
            pass
        except OSError:
            return True
        try:
            client.sendall(b"X-Slow: 1\r\n")
        except OSError:
            return True
    return False


def test_slow_header_clients_cannot_keep_health_dark(start) -> None:
    """70 slowloris sockets under a 64-file limit: /health still answers, and they are closed."""
    server = start({"SERVICE_HEADER_TIMEOUT": "2"}, files=64)
    clients = _slow_clients(server.url, 70)
    try:
        _trickle(clients)
        health = httpx.get(f"{server.url}/health", timeout=10)
        assert health.status_code == 200
        assert all(_closed_by_server(client, patience=30) for client in clients)
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    finally:
        for client in clients:
            client.close()


def test_a_kept_alive_connection_gets_a_new_deadline_for_each_request(start) -> None:
    server = start({"SERVICE_HEADER_TIMEOUT": "2"})
    with httpx.Client(timeout=10) as client:
        for _ in range(3):
            assert client.get(f"{server.url}/health").status_code == 200
    (slow,) = _slow_clients(server.url, 1)
    with slow:
        assert _closed_by_server(slow, patience=30)


# -- the page title -----------------------------------------------------------------------------


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.title = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in = tag
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "title":
            self.title += data


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_page_title_is_text_in_the_docs(start, page: str) -> None:
    server = start({"SERVICE_API_KEYS": SECRET})

    answer = httpx.get(f"{server.url}{page}", timeout=30)

    assert answer.status_code == 200
    parsed = _Scripts()
    parsed.feed(answer.text)
    assert not [s for s in parsed.scripts if "alert(1)" in s]
    assert "<script>alert(1)</script>" in parsed.title  # shown as text
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert schema["info"]["title"] == TITLE  # the schema keeps it as written


# -- memory -------------------------------------------------------------------------------------


def _address_space(pid: int) -> int | None:
    """The soft RLIMIT_AS of a process, from /proc (None: unlimited)."""
    limits = Path(f"/proc/{pid}/limits").read_text()
    (line,) = [line for line in limits.splitlines() if line.startswith("Max address space")]
    soft = line.split()[3]
    return None if soft == "unlimited" else int(soft)


def test_a_request_too_big_for_memory_gets_507_and_the_service_keeps_serving(start) -> None:
    server = start({})
    assert _address_space(server.process.pid) is None
    with httpx.Client(timeout=60) as client:
        huge = client.post(f"{server.url}/totals", json={"n": 10**13})
        small = client.post(f"{server.url}/totals", json={"n": 3})
        health = client.get(f"{server.url}/health")

    assert huge.status_code == 507, huge.text
    assert len(huge.json()["error_id"]) == 32
    assert "memory" in huge.json()["detail"]
    assert small.json() == {"total": 3.0}
    assert health.status_code == 200


def test_service_max_memory_mb_bounds_what_one_request_may_take(start) -> None:
    """Above the process's own start-up size, below what the request asks: 507, not an OOM."""
    server = start({"SERVICE_MAX_MEMORY_MB": "4096"})
    assert _address_space(server.process.pid) == 4096 * 1024 * 1024  # before asking for more
    with httpx.Client(timeout=60) as client:
        big = client.post(f"{server.url}/totals", json={"n": 600_000_000})  # 4.8 GB of ones
        small = client.post(f"{server.url}/totals", json={"n": 3})

    assert big.status_code == 507, big.text
    assert small.json() == {"total": 3.0}


def test_a_worker_process_out_of_memory_answers_507_and_is_replaced(
    start, process_service: Path
) -> None:
    server = start({"SERVICE_MAX_MEMORY_MB": "4096"}, folder=process_service)
    assert _address_space(server.process.pid) == 4096 * 1024 * 1024  # the workers inherit it
    with httpx.Client(timeout=60) as client:
        big = client.post(f"{server.url}/ones", json={"n": 600_000_000})
        huge = client.post(f"{server.url}/ones", json={"n": 10**13})
        small = client.post(f"{server.url}/ones", json={"n": 3})
        health = client.get(f"{server.url}/health")

    assert (big.status_code, huge.status_code) == (507, 507), (big.text, huge.text)
    assert big.json()["error_id"] != huge.json()["error_id"]
    assert small.json() == {"total": 3.0}
    assert health.status_code == 200
