"""Long notebooks as jobs (DESIGN.md section 3b), against the real thing.

A notebook that sleeps and fails on request is converted with the real CLI; its service runs
under uvicorn on 127.0.0.1 and is called over HTTP. The embedded mode (SQLite, worker processes
inside the service) is killed with SIGKILL and restarted; the distributed mode runs on a real
``redis-server`` started here and a real ``python -m app.worker``. Nothing asserts a duration:
every wait polls a state with a generous deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port, run_cli, wait_ready, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
DEADLINE = 120.0  # seconds any state may take to arrive on a loaded 2-core machine


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The nap notebook converted by the CLI: sleeps ``seconds``; raises when ``fail``; ends
    its own process when ``crash`` (as a segfault or the OOM killer would)."""
    folder = tmp_path_factory.mktemp("jobs")
    notebook = write_notebook(
        folder / "nap.ipynb",
        ("markdown", "# Nap\n\nSleeps for a while, then says how long.", []),
        ("code", "import os\nimport time", []),
        (
            "code",
            "seconds = 0.0  # How long to sleep\nfail = False  # Raise instead of answering\n"
            "crash = False  # End the process",
            ["parameters"],
        ),
        (
            "code",
            "time.sleep(seconds)\nif fail:\n    raise ValueError('asked to fail')\n"
            "if crash:\n    os._exit(3)\nanswer = {'slept': seconds}",
            [],
        ),
        ("code", "answer", ["response"]),
        metadata={"job_timeout": 120},
    )
    out = folder / "nap_service"
    result = run_cli("convert", notebook, "-o", out)
    assert result.returncode == 0, result.output
    assert "POST /nap/jobs" in result.output  # convert prints the job routes
    return out


Start = Callable[..., str]


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Kill the process's whole group (it was started in a session of its own)."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (each in its own session), killed with their groups after."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in reversed(started):
        _stop(process)


def _spawn(
    started: list[subprocess.Popen[bytes]], command: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    with (cwd.parent / f"{Path(command[-1]).name}-{len(started)}.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(process)
    return process


@pytest.fixture
def start(service: Path, processes: list[subprocess.Popen[bytes]]) -> Start:
    """``start(**settings)``: the service under uvicorn with SERVICE_* settings; its URL."""

    def run(**settings: str) -> str:
        port = free_port()
        env = {f"SERVICE_{k.upper()}": v for k, v in settings.items()}
        command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)]
        process = _spawn(processes, command, service, env)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, limit=DEADLINE)
        run.last = process  # type: ignore[attr-defined]
        run.log = service.parent / f"{port}-{len(processes) - 1}.log"  # type: ignore[attr-defined]
        return url

    return run


def _submit(url: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/nap/jobs", json=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == job["href"] == f"/jobs/{job['id']}"
    assert (job["route"], job["status"]) == ("/nap", "queued")
    return job


def _job(url: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _wait(url: str, job_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        job = _job(url, job_id)
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def _check_lifecycle(url: str) -> None:
    """Submit, poll, fail, list and page: what both engines must do alike."""
    done = _wait(url, _submit(url, {"seconds": 0})["id"], "succeeded")
    sync = httpx.post(f"{url}/nap", json={"seconds": 0}, timeout=30).json()
    assert done["result"] == sync == {"slept": 0.0}
    assert done["error"] is None
    assert done["submitted_at"] <= done["started_at"] <= done["finished_at"]

    failed = _wait(url, _submit(url, {"fail": True})["id"], "failed")
    assert failed["result"] is None
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["message"] == "asked to fail"
    assert len(failed["error"]["error_id"]) == 32
    assert "Traceback" not in str(failed)

    first = httpx.get(f"{url}/jobs", params={"limit": 1}, timeout=30).json()
    assert [j["id"] for j in first["jobs"]] == [failed["id"]]  # newest first
    second = httpx.get(f"{url}/jobs", params={"limit": 1, "cursor": first["next_cursor"]})
    assert [j["id"] for j in second.json()["jobs"]] == [done["id"]]
    only = httpx.get(f"{url}/jobs", params={"status": "failed", "route": "/nap"}).json()
    assert {j["id"] for j in only["jobs"]} == {failed["id"]}

    missing = httpx.get(f"{url}/jobs/{'0' * 32}", timeout=30)
    assert missing.status_code == 404
    assert "no job" in missing.json()["detail"]
    wrong = httpx.post(f"{url}/nap/jobs", json={"secondz": 1}, timeout=30)
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body", "secondz"]


def _check_cancel_frees_the_worker(url: str) -> None:
    """With one worker: cancel a running job, then another job still runs to the end."""
    running = _submit(url, {"seconds": 600})
    _wait(url, running["id"], "running")
    queued = _submit(url, {"seconds": 600})
    cancelled = httpx.delete(f"{url}/jobs/{queued['id']}", timeout=30)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["started_at"] is None

    stopped = httpx.delete(f"{url}/jobs/{running['id']}", timeout=30)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "cancelled"
    again = httpx.delete(f"{url}/jobs/{running['id']}", timeout=30)
    assert again.status_code == 409
    assert again.json()["status"] == "cancelled"

    after = _wait(url, _submit(url, {"seconds": 0})["id"], "succeeded")  # the worker is free
    assert after["result"] == {"slept": 0.0}
    assert _job(url, queued["id"])["status"] == "cancelled"  # and never ran


def _check_crash_frees_the_worker(url: str, kind: str) -> None:
    """Code that ends its worker process fails its job; the next job gets a fresh worker."""
    crashed = _wait(url, _submit(url, {"crash": True})["id"], "failed")
    assert crashed["error"]["type"] == kind
    assert "worker" in crashed["error"]["message"]
    after = _wait(url, _submit(url, {"seconds": 0})["id"], "succeeded")
    assert after["result"] == {"slept": 0.0}


def test_embedded_jobs_run_fail_list_and_cancel(start: Start, tmp_path: Path) -> None:
    url = start(jobs_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", job_workers="1")
    _check_lifecycle(url)
    _check_cancel_frees_the_worker(url)
    _check_crash_frees_the_worker(url, "ProcessExpired")
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert 'jobs_finished_total{route="/nap",status="succeeded"}' in metrics
    assert 'jobs_finished_total{route="/nap",status="cancelled"}' in metrics
    assert 'job_duration_seconds_count{route="/nap",status="failed"} 2.0' in metrics


def test_job_api_in_openapi_with_the_routes_models(start: Start, tmp_path: Path) -> None:
    url = start(jobs_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", api_keys="secret")
    schema = httpx.get(f"{url}/openapi.json", timeout=30).json()
    submit = schema["paths"]["/nap/jobs"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/NapRequest"
    )
    assert "202" in submit["responses"]
    assert submit["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/HTTPValidationError"
    )  # as the sync route documents it
    job = schema["components"]["schemas"]["Job"]
    assert "NapResponse" in str(job["properties"]["result"])
    assert {"get", "delete"} <= set(schema["paths"]["/jobs/{job_id}"])
    assert submit["security"] == [{"APIKey": []}]
    # API keys apply to the job API as to the routes.
    refused = httpx.post(f"{url}/nap/jobs", json={}, timeout=30)
    assert refused.status_code == 401
    assert httpx.get(f"{url}/jobs", timeout=30).status_code == 401
    job_id = _submit(url, {}, **{"X-API-Key": "secret", "X-Request-ID": "job-req-1"})["id"]
    answer = httpx.get(f"{url}/jobs/{job_id}", headers={"X-API-Key": "secret"}, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["x-request-id"]
    # The submission's log line names the job and carries the request id.
    deadline = time.monotonic() + DEADLINE
    while f"job {job_id} queued" not in start.log.read_text():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "no log line for the job"
        time.sleep(0.1)
    line = next(
        json.loads(text)
        for text in start.log.read_text().splitlines()  # type: ignore[attr-defined]
        if f"job {job_id} queued" in text
    )
    assert (line["request_id"], line["job_id"], line["route"]) == ("job-req-1", job_id, "/nap")


def test_job_timeout_stops_the_job(start: Start, tmp_path: Path) -> None:
    url = start(jobs_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", job_timeout="1")
    job = _wait(url, _submit(url, {"seconds": 600})["id"], "failed")
    assert job["error"]["type"] == "timeout"
    assert "timeout of 1 s" in job["error"]["message"]


def test_embedded_jobs_survive_sigkill_and_restart(start: Start, tmp_path: Path) -> None:
    settings = {"jobs_url": f"sqlite:///{tmp_path / 'jobs.sqlite3'}", "job_workers": "1"}
    url = start(**settings)
    running = _submit(url, {"seconds": 600})
    _wait(url, running["id"], "running")
    queued = _submit(url, {"seconds": 0})
    assert _job(url, queued["id"])["status"] == "queued"
    _stop(start.last)  # type: ignore[attr-defined]  (SIGKILL, the whole group)

    url = start(**settings)
    crashed = _wait(url, running["id"], "failed")
    assert crashed["error"]["type"] == "interrupted"
    assert "restart or a crash" in crashed["error"]["message"]
    done = _wait(url, queued["id"], "succeeded")
    assert done["result"] == {"slept": 0.0}


@pytest.fixture
def redis_server(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> tuple[str, subprocess.Popen[bytes]]:
    """A real redis-server on a free 127.0.0.1 port, nothing kept on disk: (URL, process)."""
    import redis

    port = free_port()
    command = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    process = _spawn(processes, [*command, "no", "--dir", str(tmp_path)], tmp_path, {})
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert process.poll() is None, "redis-server exited"
        try:
            if redis.Redis(port=port, socket_connect_timeout=1).ping():
                return f"redis://127.0.0.1:{port}/0", process
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("redis-server did not start")


def test_redis_jobs_run_on_a_celery_worker(
    start: Start,
    service: Path,
    redis_server: tuple[str, subprocess.Popen[bytes]],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    redis_url = redis_server[0]
    env = {"SERVICE_JOBS_URL": redis_url, "SERVICE_JOB_WORKERS": "1"}
    worker = _spawn(processes, [sys.executable, "-m", "app.worker"], service, env)
    url = start(jobs_url=redis_url)
    _check_lifecycle(url)
    _check_cancel_frees_the_worker(url)
    _check_crash_frees_the_worker(url, "interrupted")
    assert worker.poll() is None
    # The service process ran none of them: it has no job worker processes of its own.
    import psutil

    api = psutil.Process(start.last.pid)  # type: ignore[attr-defined]
    assert api.children(recursive=True) == []
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert 'jobs_finished_total{route="/nap",status="succeeded"}' in metrics


def test_redis_job_timeout_stops_the_job(
    start: Start,
    service: Path,
    redis_server: tuple[str, subprocess.Popen[bytes]],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    env = {"SERVICE_JOBS_URL": redis_server[0], "SERVICE_JOB_WORKERS": "1"}
    _spawn(processes, [sys.executable, "-m", "app.worker"], service, env)
    url = start(jobs_url=redis_server[0], job_timeout="1")  # the submitter sets the limits
    job = _wait(url, _submit(url, {"seconds": 600})["id"], "failed")
    assert job["error"]["type"] == "timeout"
    assert "timeout of 1 s" in job["error"]["message"]
    after = _wait(url, _submit(url, {"seconds": 0})["id"], "succeeded")
    assert after["result"] == {"slept": 0.0}


def test_redis_down_answers_503_and_drops_nothing(
    start: Start, redis_server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    redis_url, redis_process = redis_server
    url = start(jobs_url=redis_url)
    job = _submit(url, {"seconds": 0})  # stored and queued (no worker here: it stays queued)
    _stop(redis_process)
    refused = httpx.post(f"{url}/nap/jobs", json={"seconds": 0}, timeout=60)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "retry" in refused.json()["detail"]
    assert httpx.get(f"{url}/jobs/{job['id']}", timeout=60).status_code == 503
    assert httpx.get(f"{url}/jobs", timeout=60).status_code == 503
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200


def test_worker_refuses_the_embedded_store(service: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SERVICE_JOBS_URL": f"sqlite:///{tmp_path / 'jobs.sqlite3'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "app.worker"],
        cwd=service,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "SERVICE_JOBS_URL=redis://" in proc.stderr
