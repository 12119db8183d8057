"""``python -m bench.serving``: promoter against hand-written only, with CPU time per request.

The serving half of ``make bench`` for a few notebooks, for checking one change to the
generated service's plumbing on a shared machine: the same servers, uvicorn settings, request
bodies and load generator as ``python -m bench``, rounds in rotating order, and besides req/s
the CPU time each server process spent per request (``/proc/PID/stat``), which other load on
the machine disturbs far less than req/s. ``--baseline REV`` also serves the generated service
with its runtime and JSON converter (``app/runtime``, ``app/jsonable``) as they were at
git revision REV.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import _load
from bench._main import BODIES, ROOT, convert, log, uvicorn
from bench._procs import Server, ServerPool

SHIPPED = ("runtime", "jsonable")  # what the generated service carries verbatim
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--notebooks", nargs="+", choices=sorted(BODIES), required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=float, default=3, help="seconds per round")
    parser.add_argument("--baseline", help="git revision of the runtime and jsonable to compare")
    args = parser.parse_args(argv)
    tool = _load.loadgen_name("auto")
    with tempfile.TemporaryDirectory(prefix="promoter-serving-") as tmp:
        for name in args.notebooks:
            folders = {"generated": Path(tmp) / "generated" / name}
            convert(name, folders["generated"])
            if args.baseline:
                folders["baseline"] = _with_baseline(folders["generated"], args.baseline)
            results = measure(name, folders, args.rounds, args.duration, tool, Path(tmp))
            print(report(name, results, args.baseline), flush=True)
    return 0


def _with_baseline(folder: Path, revision: str) -> Path:
    """A copy of the service with its shipped modules as they were at ``revision``.

    Either layout: ``app/runtime.py`` and ``app/jsonable.py`` (before the runtime became a
    package) or the ``app/runtime/`` and ``app/jsonable/`` packages.
    """
    baseline = folder.parent.parent / "baseline" / folder.name
    shutil.copytree(folder, baseline)
    for name in SHIPPED:
        shutil.rmtree(baseline / "app" / name, ignore_errors=True)
        (baseline / "app" / f"{name}.py").unlink(missing_ok=True)
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", revision, "templates/service/app/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for path in listed:
        relative = path.removeprefix("templates/service/")
        if relative.split("/")[1].removesuffix(".py") not in SHIPPED:
            continue
        source = subprocess.run(
            ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        (baseline / relative).parent.mkdir(parents=True, exist_ok=True)
        (baseline / relative).write_bytes(source)
    return baseline


def measure(
    name: str, folders: dict[str, Path], rounds: int, duration: float, tool: str, tmp: Path
) -> dict[str, dict[str, list[float]]]:
    route, body = f"/{name}", BODIES[name]
    with ServerPool(tmp) as pool:
        servers: dict[str, Server] = {
            "handwritten": pool.start(
                f"{name}-handwritten", uvicorn(f"bench.handwritten.{name}:app"), ROOT
            )
        }
        for kind, folder in folders.items():
            servers[kind] = pool.start(f"{name}-{kind}", uvicorn("app.main:app"), folder)
        for server in servers.values():
            pool.wait_ready(server, "/health", timeout=300)
            _load.measure(tool, server.base_url + route, body, 10, 2, 10)  # warm-up
        results: dict[str, dict[str, list[float]]] = {
            kind: {"rps": [], "cpu_us": []} for kind in servers
        }
        order = list(servers)
        for i in range(rounds):
            for kind in order[i % len(order) :] + order[: i % len(order)]:
                server = servers[kind]
                before = cpu_seconds(server.process.pid)
                run = _load.measure(tool, server.base_url + route, body, 10, duration, 10)
                spent = cpu_seconds(server.process.pid) - before
                if run["errors"] or not run["requests"]:
                    raise RuntimeError(f"{server.name}: {run}\n{server.log_tail()}")
                results[kind]["rps"].append(run["rps"])
                results[kind]["cpu_us"].append(spent / run["requests"] * 1e6)
        log(f"{name}: {rounds} rounds of {duration:g} s per server done")
    return results


def report(name: str, results: dict[str, Any], baseline: str | None) -> str:
    hand = results["handwritten"]
    lines = [f"{name} (10 connections; x hand-written: best req/s as make bench, CPU/request)"]
    for kind, runs in results.items():
        best, cpu = max(runs["rps"]), statistics.median(runs["cpu_us"])
        line = f"  {kind:<12} best {best:8.1f} req/s   CPU {cpu:7.1f} us/request"
        if kind != "handwritten":
            speed = best / max(hand["rps"])
            lean = statistics.median(hand["cpu_us"]) / cpu
            line += f"   x hand-written: req/s {speed:.3f}, CPU/request {lean:.3f}"
        lines.append(line + (f"  (runtime at {baseline})" if kind == "baseline" else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
