"""Drive a server with a load generator in a separate process: wrk, or a Python fallback.

Both print one ``BENCH_JSON {...}`` line with the same keys (requests, duration_us, p50_us,
p90_us, p99_us, max_us, errors_*), which :func:`measure` turns into a result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).with_name("post.lua")


def loadgen_name(preferred: str = "auto") -> str:
    """``wrk`` when installed (or asked for), else the built-in ``python`` generator."""
    if preferred == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if preferred == "wrk":
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    return "python"


def loadgen_version(name: str) -> str:
    if name == "wrk":
        # `wrk -v` prints its version and exits 1.
        result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        first = (result.stdout or result.stderr).splitlines()[0]
        return first.split(" [", 1)[0].strip()  # drop "[epoll] Copyright ..."
    return f"bench._pyload (httpx, Python {sys.version.split()[0]})"


def measure(
    tool: str,
    url: str,
    body: Any,
    concurrency: int,
    duration: float,
    timeout: float,
) -> dict[str, Any]:
    """Run the load generator for ``duration`` seconds; return req/s and latencies in ms."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(body, handle)
    try:
        raw = _run(tool, url, Path(handle.name), concurrency, duration, timeout)
    finally:
        os.unlink(handle.name)
    seconds = raw["duration_us"] / 1e6
    errors = sum(v for k, v in raw.items() if k.startswith("errors_"))
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 2) if seconds else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p90_ms": round(raw["p90_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "max_ms": round(raw["max_us"] / 1000, 3),
        "errors": errors,
        "concurrency": concurrency,
    }


def _run(
    tool: str, url: str, body_file: Path, concurrency: int, duration: float, timeout: float
) -> dict[str, Any]:
    if tool == "wrk":
        # wrk takes whole seconds; one thread is enough for one server on 2 cores.
        argv = [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={max(1, round(timeout))}s",
            "-s",
            str(LUA_SCRIPT),
            url,
        ]
        env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    else:
        argv = [
            sys.executable,
            "-m",
            "bench._pyload",
            url,
            str(body_file),
            f"--concurrency={concurrency}",
            f"--duration={duration}",
            f"--timeout={timeout}",
        ]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        timeout=duration + timeout + 30,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return parsed
    raise RuntimeError(f"{tool} gave no summary (exit {result.returncode}):\n{result.stderr}")
