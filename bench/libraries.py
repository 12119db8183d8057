"""``python -m bench.libraries``: the runtime's hand-written parts against the libraries for them.

Issue 20 asks to take a well-kept library wherever one does what a runtime module writes by
hand, if it costs no speed. This measures, in one process and without a network (so the numbers
are the parts' own cost per request, which a 2-core machine shared with the load generator
would blur), each part of the per-request path against its library:

- the JSON log line: ``app.runtime.logs.JsonFormatter`` on the access record, against
  python-json-logger's ``JsonFormatter`` and its orjson one on a record with the same fields;
- request ids: the whole ``Plumbing`` middleware (request id, metrics, log line) around an
  empty ASGI app, against asgi-correlation-id's ``CorrelationIdMiddleware`` alone around it;
- metrics: ``RequestCounts.observe`` against prometheus-fastapi-instrumentator's middleware
  (its default metrics) around the same empty app.

The libraries are dev dependencies (``pip install -e .[dev]``); none ships in a service.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import logging
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "templates" / "service" / "app"


def _runtime() -> types.ModuleType:
    package = types.ModuleType("app")
    package.__path__ = [str(APP)]
    sys.modules["app"] = package
    return importlib.import_module("app.runtime")


def per_call(work: Callable[[], Any], calls: int, rounds: int = 7) -> float:
    """Microseconds per call, the median of ``rounds`` timings of ``calls`` calls."""
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            work()
        timings.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(timings)


def log_lines(runtime: types.ModuleType, calls: int) -> dict[str, float]:
    from pythonjsonlogger.json import JsonFormatter as LibraryJson
    from pythonjsonlogger.orjson import OrjsonFormatter

    state = runtime.RequestState("c0ffee" * 5)
    ours = runtime.JsonFormatter()
    record = runtime.AccessRecord("POST", "/score", "/score", 200, 0.00123, state)
    fields = {
        "request_id": state.request_id,
        "method": "POST",
        "route": "/score",
        "path": "/score",
        "status": 200,
        "latency_ms": 1.23,
    }
    names = "%(asctime)s %(levelname)s %(name)s %(message)s"

    def library_record() -> logging.LogRecord:
        args = ("POST", "/score", 200, 1.23)
        made = logging.LogRecord("app.request", 20, __file__, 1, "%s %s %d %.1f ms", args, None)
        made.__dict__.update(fields)
        return made

    library, fast = LibraryJson(names), OrjsonFormatter(names)
    return {
        "ours (record made + formatted)": per_call(
            lambda: ours.format(
                runtime.AccessRecord("POST", "/score", "/score", 200, 0.00123, state)
            ),
            calls,
        ),
        "ours (formatted only)": per_call(lambda: ours.format(record), calls),
        "python-json-logger json": per_call(lambda: library.format(library_record()), calls),
        "python-json-logger orjson": per_call(lambda: fast.format(library_record()), calls),
    }


async def _empty(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _asgi_calls(app: Any, calls: int) -> float:
    """Microseconds per request through ``app`` (an ASGI callable), on one event loop."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/score",
        "raw_path": b"/score",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        "app": types.SimpleNamespace(routes=[]),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def run() -> float:
        timings = []
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(calls):
                await app(dict(scope), receive, send)
            timings.append((time.perf_counter() - start) / calls * 1e6)
        return statistics.median(timings)

    return asyncio.run(run())


def middleware(runtime: types.ModuleType, calls: int) -> dict[str, float]:
    import prometheus_client as prom
    from asgi_correlation_id import CorrelationIdMiddleware
    from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware

    quiet = logging.getLogger()
    saved = quiet.handlers[:]
    quiet.handlers[:] = [logging.StreamHandler(io.StringIO())]
    try:
        settings = runtime.Settings(log_flush_seconds=0.05)
        plumbing = runtime.Plumbing(_empty, settings=settings, metrics=runtime.Metrics())
        counts = runtime.RequestCounts(prom.Histogram.DEFAULT_BUCKETS)
        instrumented = PrometheusInstrumentatorMiddleware(_empty, registry=prom.CollectorRegistry())
        return {
            "empty app": _asgi_calls(_empty, calls),
            "ours: Plumbing (request id + metrics + log line)": _asgi_calls(plumbing, calls),
            "asgi-correlation-id (request id only)": _asgi_calls(
                CorrelationIdMiddleware(_empty), calls
            ),
            "prometheus-fastapi-instrumentator (metrics only)": _asgi_calls(instrumented, calls),
            "ours: RequestCounts.observe (metrics only, no middleware)": per_call(
                lambda: counts.observe("POST", "/score", 200, 0.00123), calls
            ),
        }
    finally:
        runtime.logs.flush_logs()
        quiet.handlers[:] = saved


def main() -> int:
    calls = 2_000 if "--smoke" in sys.argv else 20_000
    runtime = _runtime()
    print("per request, microseconds (median of 7 rounds; lower is better)")
    for title, results in (
        ("JSON log line", log_lines(runtime, calls)),
        ("middleware", middleware(runtime, calls)),
    ):
        print(f"{title}:")
        for name, value in results.items():
            print(f"  {name:<58} {value:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
