"""What a job costs next to the synchronous route (DESIGN.md section 3b).

A job whose notebook code takes microseconds (a "0-second job") is submitted and polled until
it succeeded, one at a time; the time from the POST to the GET that shows it finished is the
job machinery's own cost: storing it, handing it to a worker, running it there, writing how it
ended, and the polls (every 2 ms). The synchronous POST of the same body is timed in the same
loop, alternating, so both see the same machine. Embedded (SQLite, worker processes inside the
service) and distributed (Celery with a real ``redis-server`` and one ``python -m app.worker``).
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._procs import Server, ServerPool, http

__all__ = ["measure"]

POLL_SECONDS = 0.002


def measure(
    pool: ServerPool,
    folder: Path,
    route: str,
    body: Any,
    jobs: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Job and sync latencies (ms, median and p90) per mode, in the service at ``folder``."""
    results: dict[str, Any] = {"route": route, "jobs": jobs, "poll_ms": POLL_SECONDS * 1000}
    embedded_url = f"sqlite:///{folder.parent / 'bench-jobs.sqlite3'}"
    results["embedded"] = _mode(pool, folder, route, body, jobs, {"SERVICE_JOBS_URL": embedded_url})
    redis = shutil.which("redis-server")
    if redis is None:
        results["redis"] = {"skipped": "redis-server is not installed"}
    else:
        server = pool.start(
            "redis",
            [redis, "--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            folder.parent,
        )
        _wait_port(server)
        env = {"SERVICE_JOBS_URL": f"redis://127.0.0.1:{server.port}/0", "SERVICE_JOB_WORKERS": "1"}
        worker = pool.start("worker", [sys.executable, "-m", "app.worker"], folder, env)
        try:
            results["redis"] = _mode(pool, folder, route, body, jobs, env)
        finally:
            pool.stop(worker)
            pool.stop(server)
    for mode in ("embedded", "redis"):
        if "job" in results[mode]:
            log(
                f"jobs ({mode}): submit+complete {results[mode]['job']['p50_ms']:.1f} ms, "
                f"sync {results[mode]['sync']['p50_ms']:.1f} ms (p50)"
            )
    return results


def _mode(
    pool: ServerPool, folder: Path, route: str, body: Any, jobs: int, env: dict[str, str]
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", "{port}"]
    service = pool.start(f"jobs-{env['SERVICE_JOBS_URL'][:5]}", argv, folder, env)
    pool.wait_ready(service, "/ready", timeout=300)
    try:
        for _ in range(5):  # warm-up: the workers' first job, the connections
            _job(service, route, body)
        job_ms, sync_ms = [], []
        for _ in range(jobs):
            job_ms.append(_job(service, route, body))
            sync_ms.append(_sync(service, route, body))
    finally:
        pool.stop(service)
    return {"job": _stats(job_ms), "sync": _stats(sync_ms), "ratio": _ratio(job_ms, sync_ms)}


def _job(server: Server, route: str, body: Any) -> float:
    start = time.perf_counter()
    status, raw = http("POST", f"{server.base_url}{route}/jobs", body)
    if status != 202:
        raise RuntimeError(f"job submission answered {status}: {raw[:300]!r}")
    href = json.loads(raw)["href"]
    deadline = start + 60
    while time.perf_counter() < deadline:
        status, raw = http("GET", server.base_url + href)
        state = json.loads(raw)["status"] if status == 200 else None
        if state == "succeeded":
            return (time.perf_counter() - start) * 1000
        if state in ("failed", "cancelled"):
            raise RuntimeError(f"the job {state}: {raw[:300]!r}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"the job did not finish in 60 s:\n{server.log_tail()}")


def _sync(server: Server, route: str, body: Any) -> float:
    start = time.perf_counter()
    status, raw = http("POST", server.base_url + route, body)
    if status != 200:
        raise RuntimeError(f"the route answered {status}: {raw[:300]!r}")
    return (time.perf_counter() - start) * 1000


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return {"p50_ms": round(statistics.median(ordered), 3), "p90_ms": round(p90, 3)}


def _ratio(job_ms: list[float], sync_ms: list[float]) -> float:
    return round(statistics.median(job_ms) / statistics.median(sync_ms), 1)


def _wait_port(server: Server) -> None:
    import socket

    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen:\n{server.log_tail()}")
