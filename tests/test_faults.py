"""Faults in notebook code: 500/504 with an error id, and the service keeps serving.

One notebook misbehaves on request: `mode="raise"` raises, `delay` sleeps past the 1 s route
timeout, `mode="function"` returns a value with no JSON form. Its default run is quick and clean,
so it converts. Bodies over the size limit are refused with 413, declared or streamed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, run_cli, wait_ready, write_notebook

pytestmark = pytest.mark.slow

HANDLER = """\
if mode == "raise":
    raise ValueError("the notebook refuses mode=raise")
time.sleep(delay)
value = (lambda: 1) if mode == "function" else len(mode)
"""


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("faulty")
    notebook = write_notebook(
        folder / "faulty.ipynb",
        ("markdown", "# Faulty\n\nMisbehaves on request.", []),
        ("code", "import time", ["setup"]),
        ("code", 'mode = "ok"  # ok, raise or function\ndelay = 0.0  # Seconds', ["parameters"]),
        ("code", HANDLER, []),
        ("code", '{"value": value, "mode": mode}', ["response"]),
        metadata={"timeout": 1},
    )
    service = folder / "service"
    result = run_cli("convert", notebook, "-o", service)
    assert result.returncode == 0, result.output
    log = folder / "server.log"
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
            cwd=service,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=10)


def _still_serving(client: httpx.Client) -> None:
    response = client.post("/faulty", json={"mode": "fine"})
    assert response.status_code == 200, response.text
    assert response.json() == {"value": 4, "mode": "fine"}


@pytest.mark.parametrize(
    ("body", "status"),
    [({"mode": "raise"}, 500), ({"mode": "function"}, 500), ({"delay": 3.0}, 504)],
    ids=["raises", "not-serialisable", "hangs"],
)
def test_fault_gives_error_id_and_service_keeps_serving(
    faulty: tuple[str, Path], body: dict[str, object], status: int
) -> None:
    url, log = faulty
    with httpx.Client(base_url=url, timeout=30) as client:
        _still_serving(client)
        response = client.post("/faulty", json=body)
        assert response.status_code == status, response.text
        answer = response.json()
        error_id = answer["error_id"]
        assert len(error_id) == 32
        assert "Traceback" not in response.text
        assert "refuses" not in response.text  # the exception text stays in the log
        _still_serving(client)
        for _ in range(3):
            _still_serving(client)
    assert error_id in log.read_text(encoding="utf-8", errors="replace")


def test_body_over_the_limit_gets_413(faulty: tuple[str, Path]) -> None:
    url, _ = faulty
    big = b'{"mode": "' + b"x" * 1_100_000 + b'"}'
    with httpx.Client(base_url=url, timeout=30) as client:
        declared = client.post("/faulty", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the middleware counts the stream
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

        streamed = client.post(
            "/faulty", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        _still_serving(client)


def test_invalid_input_is_422_with_field_paths(faulty: tuple[str, Path]) -> None:
    url, _ = faulty
    with httpx.Client(base_url=url, timeout=30) as client:
        for body in ({"delay": "slow"}, {"mood": "ok"}, [1, 2], "null"):
            response = client.post("/faulty", json=body)
            assert response.status_code == 422, (body, response.text)
        broken = client.post("/faulty", content=b"{", headers={"content-type": "application/json"})
        assert broken.status_code == 422
        _still_serving(client)
