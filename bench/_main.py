"""``python -m bench``: measure promoter against its peers, then write the results.

Every server is a child process on 127.0.0.1 owned by a :class:`~bench._procs.ServerPool`, so
all of them are stopped however the run ends. ``--smoke`` runs the whole harness on one
notebook with tiny durations (a CI test uses it); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import _cli_timing, _jobs, _large, _load, _report
from bench._procs import Server, ServerPool, http

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
EXAMPLES = ROOT / "examples" / "notebooks"

# One request body per example notebook: non-default values, so no code path is cached.
BODIES: dict[str, dict[str, Any]] = {
    "iris_classifier": {
        "sepal_length": 6.3,
        "sepal_width": 2.8,
        "petal_length": 5.1,
        "petal_width": 1.5,
    },
    "text_statistics": {
        "text": "It was the best of times, it was the worst of times. It was the age of wisdom, "
        "it was the age of foolishness! Was it the epoch of belief?",
        "stopwords": ["the", "of", "it", "was"],
        "top_n": 3,
        "lowercase": True,
    },
    "loan_calculator": {
        "principal": 180000.0,
        "annual_rate": 0.039,
        "years": 20,
        "extra_payment": 150.0,
    },
    "shipping_quote": {
        "weight_kg": 3.2,
        "service": "express",
        "destination_zone": 5,
        "items": ["book", "battery"],
        "insured": True,
        "coupon": "WELCOME10",
    },
}

KINDS = ("generated", "handwritten", "kernel_gateway", "papermill")


@dataclass(frozen=True)
class Settings:
    """Durations and sizes of one run."""

    notebooks: tuple[str, ...]
    duration: float  # seconds per measurement of the fast servers
    warmup: float
    rounds: int  # generated and hand-written measurements alternate this many times
    concurrency: int
    latency_duration: float  # one connection: latency without queueing (vs papermill)
    kg_duration: float
    papermill_duration: float
    papermill_concurrency: int
    cli_runs: int
    big_cells: int
    smoke: bool

    @classmethod
    def full(cls, notebooks: tuple[str, ...]) -> Settings:
        return cls(notebooks, 4, 2, 4, 10, 3, 6, 12, 1, 10, 500, False)

    @classmethod
    def quick(cls, notebooks: tuple[str, ...]) -> Settings:
        return cls(notebooks, 1, 1, 1, 4, 1, 1, 2, 1, 2, 500, True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny durations, one notebook")
    parser.add_argument(
        "--notebooks", nargs="+", choices=sorted(BODIES), help="default: all (smoke: one)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write latest.json, benchmarks.md and benchmarks.png here instead of the repo",
    )
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--large", action="store_true", help="only the large-answer scaling (10 to 100,000 rows)"
    )
    parser.add_argument(
        "--jobs", action="store_true", help="only the job form's cost (embedded and Redis)"
    )
    args = parser.parse_args(argv)
    if args.large:
        return run_large(args.smoke, args.out)
    if args.jobs:
        return run_jobs(args.notebooks[0] if args.notebooks else "text_statistics", args.smoke)
    if args.smoke:
        settings = Settings.quick(tuple(args.notebooks or ["text_statistics"]))
    else:
        settings = Settings.full(tuple(args.notebooks or BODIES))
    tool = _load.loadgen_name(args.loadgen)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="promoter-bench-") as tmp:
        results = run(settings, tool, Path(tmp))
    results["meta"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    paths = _report.write_all(results, args.out, ROOT)
    for path in paths:
        print(f"bench: wrote {path}")
    print(_report.summary_text(results))
    return 0


def run_large(smoke: bool, out: Path | None) -> int:
    """``--large``: the service's JSON writer against hand-written, from 10 to 100,000 rows."""
    meta = _report.machine("http.client", "stdlib", smoke)
    with tempfile.TemporaryDirectory(prefix="promoter-bench-") as tmp:
        results = {"meta": meta, **_large.measure(smoke, Path(tmp), log)}
    meta["load_after"] = _report.load_average()
    print(f"bench: wrote {_large.write(results, out or BENCH / 'results')}")
    print(_large.table(results))
    return 0


def run_jobs(name: str, smoke: bool) -> int:
    """``--jobs``: a 0-second job's submit-to-finished time next to the sync route (printed)."""
    with tempfile.TemporaryDirectory(prefix="promoter-bench-") as tmp:
        folder = Path(tmp) / "services" / name
        convert(name, folder)
        with ServerPool(Path(tmp)) as pool:
            results = _jobs.measure(
                pool, folder, f"/{name}", BODIES[name], 10 if smoke else 100, log
            )
    print("\n".join(_report.jobs_markdown(results)))
    return 0


def run(settings: Settings, tool: str, tmp: Path) -> dict[str, Any]:
    """Everything, in an order that keeps at most one notebook's servers alive at a time."""
    meta = _report.machine(tool, _load.loadgen_version(tool), settings.smoke)
    meta["settings"] = asdict(settings)
    log(f"load generator: {meta['loadgen']}; load average {meta['load_before']}")
    cli = _cli_timing.measure_cli(tmp, settings.cli_runs, settings.big_cells, log)
    services: dict[str, Any] = {}
    conversions: dict[str, Any] = {}
    with ServerPool(tmp) as pool:
        papermill = start_papermill(pool, tmp)
        for name in settings.notebooks:
            conversions[name] = convert(name, tmp / "services" / name)
            services[name] = bench_notebook(pool, settings, tool, name, tmp, papermill)
        pool.stop(papermill)
        name = settings.notebooks[0]
        folder, count = tmp / "services" / name, 10 if settings.smoke else 100
        jobs = _jobs.measure(pool, folder, f"/{name}", BODIES[name], count, log)
    meta["load_after"] = _report.load_average()
    return {
        "meta": meta,
        "services": services,
        "cli": {**cli, "convert": conversions},
        "targets": _report.targets(services, cli),
        "jobs": jobs,
    }


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def convert(name: str, out: Path) -> dict[str, Any]:
    """``promoter convert --json`` as a user runs it; its own split of kernel and static time."""
    promoter = Path(sys.executable).with_name("promoter")
    start = time.perf_counter()
    result = subprocess.run(
        [str(promoter), "convert", str(EXAMPLES / f"{name}.ipynb"), "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"promoter convert {name} failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout)
    seconds, kernel = float(report["seconds"]), float(report["kernel_seconds"])
    log(f"converted {name}: {seconds:.2f} s ({kernel:.2f} s in the kernel)")
    return {
        "wall_seconds": round(wall, 3),
        "seconds": round(seconds, 3),
        "kernel_seconds": round(kernel, 3),
        "static_seconds": round(seconds - kernel, 3),
    }


def uvicorn(app: str) -> list[str]:
    """The same uvicorn settings for every FastAPI server in the benchmark."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def start_papermill(pool: ServerPool, tmp: Path) -> Server:
    env = {"BENCH_NOTEBOOKS": str(EXAMPLES)}
    server = pool.start("papermill", uvicorn("bench.papermill_app:app"), ROOT, env)
    pool.wait_ready(server, "/health", timeout=60)
    return server


def bench_notebook(
    pool: ServerPool, settings: Settings, tool: str, name: str, tmp: Path, papermill: Server
) -> dict[str, Any]:
    body, route = BODIES[name], f"/{name}"
    generated = pool.start(f"{name}-generated", uvicorn("app.main:app"), tmp / "services" / name)
    handwritten = pool.start(f"{name}-handwritten", uvicorn(f"bench.handwritten.{name}:app"), ROOT)
    kernel_gateway = pool.start(
        f"{name}-kernel_gateway",
        [
            sys.executable,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.api=kernel_gateway.notebook_http",
            f"--KernelGatewayApp.seed_uri={BENCH / 'kernel_gateway' / f'{name}.ipynb'}",
            "--KernelGatewayApp.ip=127.0.0.1",
            "--KernelGatewayApp.port={port}",
        ],
        tmp,
    )
    pool.wait_ready(generated, "/ready", timeout=300)
    pool.wait_ready(handwritten, "/health", timeout=300)
    pool.wait_ready(kernel_gateway, route, timeout=300, method="POST", body=body)
    answers = {
        kind: answer(server, route, body)
        for kind, server in [
            ("generated", generated),
            ("handwritten", handwritten),
            ("kernel_gateway", kernel_gateway),
        ]
    }

    def load(server: Server, duration: float, concurrency: int, timeout: float = 10) -> Any:
        return _load.measure(tool, server.base_url + route, body, concurrency, duration, timeout)

    fast = {"generated": generated, "handwritten": handwritten}
    for server in fast.values():
        load(server, settings.warmup, settings.concurrency)
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in fast}
    for i in range(settings.rounds):
        # Alternate the order so neither side always runs right after the other.
        order = list(fast) if i % 2 == 0 else list(reversed(fast))
        for kind in order:
            rounds[kind].append(load(fast[kind], settings.duration, settings.concurrency))
    results = {kind: summarise(runs) for kind, runs in rounds.items()}
    for kind, server in fast.items():
        results[kind]["single"] = load(server, settings.latency_duration, 1)
    pool.stop(generated)
    pool.stop(handwritten)

    load(kernel_gateway, settings.warmup, settings.concurrency)
    results["kernel_gateway"] = summarise(
        [load(kernel_gateway, settings.kg_duration, settings.concurrency)]
    )
    results["kernel_gateway"]["single"] = load(kernel_gateway, settings.latency_duration, 1)
    pool.stop(kernel_gateway)

    # The first papermill run in a process pays for its imports: one request warms it up.
    http("POST", papermill.base_url + route, body, timeout=120)
    results["papermill"] = summarise(
        [
            load(
                papermill,
                settings.papermill_duration,
                settings.papermill_concurrency,
                timeout=60,
            )
        ]
    )
    results["same_answer"] = {
        kind: same(answers["generated"], value)
        for kind, value in answers.items()
        if kind != "generated"
    }
    results["ratios"] = ratios(results)
    log(f"{name}: " + ", ".join(f"{k} {results[k]['rps']:.1f} req/s" for k in KINDS))
    return results


def answer(server: Server, route: str, body: Any) -> Any:
    status, raw = http("POST", server.base_url + route, body)
    if status != 200:
        raise RuntimeError(f"{server.name} answered {status}: {raw[:500]!r}")
    return json.loads(raw)


def same(a: Any, b: Any) -> bool:
    """Equal JSON, floats to 1e-9 relative (hand-written code may sum in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds, and the rounds themselves."""
    keys = ("rps", "p50_ms", "p90_ms", "p99_ms")
    out: dict[str, Any] = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    # Other load on a shared machine only ever slows a round down: the best round is the
    # closest to what the server can do, so ratios use it.
    out["best_rps"] = max(r["rps"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["rounds"] = runs
    return out


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    gen = results["generated"]

    def div(a: float, b: float) -> float | None:
        return round(a / b, 3) if a and b else None  # None: a server answered nothing

    return {
        "throughput_vs_handwritten": div(gen["best_rps"], results["handwritten"]["best_rps"]),
        "p50_vs_handwritten": div(gen["p50_ms"], results["handwritten"]["p50_ms"]),
        "throughput_vs_kernel_gateway": div(gen["best_rps"], results["kernel_gateway"]["best_rps"]),
        # Both at one connection: papermill serves one request at a time anyway.
        "papermill_p50_over_generated_p50": div(
            results["papermill"]["p50_ms"], gen["single"]["p50_ms"]
        ),
    }
