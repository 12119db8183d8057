"""``python -m bench --large``: the cost of large answers, 10 to 100,000 rows.

A notebook that returns a DataFrame is served through ``dumps`` of the service's converter
(``templates/service/app/jsonable/``). This measures it against the hand-written way,
``df.to_json(orient="records", date_format="iso")`` (the same dates as text; pandas 4's
default), on the same frame in the same run, twice:

- in process: the serialisation step alone (best and median of alternating rounds);
- over HTTP: one uvicorn worker on 127.0.0.1 (:mod:`bench.large_app`), one keep-alive
  connection, the client reading the whole body; latencies alternate between endpoints.

Only ratios mean something on a shared machine; the absolute times are for scale.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import statistics
import sys
import time
import types
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from bench._procs import HOST, ServerPool

ROOT = Path(__file__).resolve().parent.parent
JSONABLE = ROOT / "templates" / "service" / "app" / "jsonable"
ROWS = (10, 1_000, 10_000, 100_000)
SMOKE_ROWS = (10, 1_000)
TARGET = 1.2  # issue 12: within 1.2x of hand-written latency at 100,000 rows


def load_jsonable() -> types.ModuleType:
    """The converter exactly as it is copied into every generated service."""
    if "bench_jsonable" in sys.modules:
        return sys.modules["bench_jsonable"]
    spec = importlib.util.spec_from_file_location(
        "bench_jsonable", JSONABLE / "__init__.py", submodule_search_locations=[str(JSONABLE)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its modules import one another relatively
    spec.loader.exec_module(module)
    return module


def build_frame(rows: int) -> Any:
    """A typical result table: ids, two measures, a label, a flag and a timestamp."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rows)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "score": rng.random(rows),
            "delta": rng.normal(size=rows),
            "label": [f"item-{i % 997}" for i in range(rows)],
            "active": rng.random(rows) > 0.5,
            "seen": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**9, rows), "s"),
        }
    )


def measure(smoke: bool, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Both measurements, every size; the results as one JSON-ready dict."""
    sizes = SMOKE_ROWS if smoke else ROWS
    jsonable = load_jsonable()
    frames = {rows: build_frame(rows) for rows in sizes}
    same = {
        rows: json.loads(jsonable.dumps(frame)) == jsonable.to_jsonable(frame)
        for rows, frame in frames.items()
    }
    in_process = {}
    for rows, frame in frames.items():
        in_process[rows] = _in_process(jsonable, frame, smoke)
        log(f"large answers, in process, {rows} rows: {_ratio_text(in_process[rows])}")
    over_http = _over_http(sizes, smoke, tmp, log)
    return {
        "versions": {name: metadata.version(name) for name in ("pandas", "numpy", "orjson")},
        "rows": list(sizes),
        "dumps_equals_to_jsonable": same,
        "in_process": in_process,
        "http": over_http,
        "target": TARGET,
    }


def _in_process(jsonable: types.ModuleType, frame: Any, smoke: bool) -> dict[str, Any]:
    ways: dict[str, Callable[[], object]] = {
        "handwritten": lambda: frame.to_json(orient="records", date_format="iso").encode(),
        "dumps": lambda: jsonable.dumps(frame),
        "jsonresponse": lambda: json.dumps(
            jsonable.to_jsonable(frame), ensure_ascii=False, separators=(",", ":")
        ).encode(),
    }
    budget = 0.3 if smoke else 3.0  # seconds per way, at most
    times: dict[str, list[float]] = {way: [] for way in ways}
    for way in ways:  # warm up (imports, caches)
        ways[way]()
    deadline = time.perf_counter() + budget * len(ways)
    rounds = 0
    while rounds < 5 or (rounds < 200 and time.perf_counter() < deadline):
        order = list(ways) if rounds % 2 == 0 else list(reversed(ways))
        for way in order:
            start = time.perf_counter()
            ways[way]()
            times[way].append(time.perf_counter() - start)
        rounds += 1
    return _summary(times, rounds)


def _over_http(
    sizes: tuple[int, ...], smoke: bool, tmp: Path, log: Callable[[str], None]
) -> dict[int, Any]:
    argv = [sys.executable, "-m", "uvicorn", "bench.large_app:app", "--host", HOST]
    argv += ["--port", "{port}", "--workers", "1", "--no-access-log", "--log-level", "warning"]
    env = {"BENCH_LARGE_ROWS": ",".join(map(str, sizes))}
    results = {}
    with ServerPool(tmp) as pool:
        server = pool.start("large-answers", argv, ROOT, env)
        pool.wait_ready(server, "/health", timeout=120)
        connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
        try:
            for rows in sizes:
                results[rows] = _latencies(connection, rows, smoke)
                log(f"large answers, over HTTP, {rows} rows: {_ratio_text(results[rows])}")
        finally:
            connection.close()
    return results


def _latencies(connection: http.client.HTTPConnection, rows: int, smoke: bool) -> dict[str, Any]:
    ways = ("handwritten", "dumps", "jsonresponse")
    sizes = {way: len(_get(connection, f"/{way}?rows={rows}")) for way in ways}  # warm up
    budget = 0.5 if smoke else 4.0
    times: dict[str, list[float]] = {way: [] for way in ways}
    deadline = time.perf_counter() + budget * len(ways)
    rounds = 0
    while rounds < 5 or (rounds < 300 and time.perf_counter() < deadline):
        order = ways if rounds % 2 == 0 else tuple(reversed(ways))
        for way in order:
            start = time.perf_counter()
            _get(connection, f"/{way}?rows={rows}")
            times[way].append(time.perf_counter() - start)
        rounds += 1
    return {**_summary(times, rounds), "bytes": sizes}


def _get(connection: http.client.HTTPConnection, path: str) -> bytes:
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
    return body


def _summary(times: dict[str, list[float]], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": rounds}
    for way, seconds in times.items():
        out[way] = {
            "best_ms": round(min(seconds) * 1000, 3),
            "median_ms": round(statistics.median(seconds) * 1000, 3),
        }
    hand = out["handwritten"]
    for way in ("dumps", "jsonresponse"):
        out[f"{way}_vs_handwritten"] = {
            "best": round(out[way]["best_ms"] / hand["best_ms"], 3),
            "median": round(out[way]["median_ms"] / hand["median_ms"], 3),
        }
    return out


def _ratio_text(result: dict[str, Any]) -> str:
    hand, dumps, old = result["handwritten"], result["dumps"], result["jsonresponse"]
    return (
        f"hand-written {hand['median_ms']:.2f} ms, dumps {dumps['median_ms']:.2f} ms "
        f"(x{result['dumps_vs_handwritten']['median']:.2f}), to_jsonable+json "
        f"{old['median_ms']:.2f} ms (x{result['jsonresponse_vs_handwritten']['median']:.2f})"
    )


def table(results: dict[str, Any]) -> str:
    """A Markdown table of the run: median latencies and the ratios to hand-written."""
    lines = [
        "| rows | where | hand-written ms | dumps ms | dumps / hand-written "
        "| to_jsonable+json ms | to_jsonable+json / hand-written |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for rows in results["rows"]:
        for where in ("in_process", "http"):
            r = results[where][rows]
            lines.append(
                f"| {rows:,} | {where.replace('_', ' ')} | {r['handwritten']['median_ms']:.2f} "
                f"| {r['dumps']['median_ms']:.2f} | {r['dumps_vs_handwritten']['median']:.2f} "
                f"| {r['jsonresponse']['median_ms']:.2f} "
                f"| {r['jsonresponse_vs_handwritten']['median']:.2f} |"
            )
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path) -> Path:
    """``large.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "large.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return path
