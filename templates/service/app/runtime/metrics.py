"""Metrics: the Prometheus series of this worker process."""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Iterator, Sequence
from typing import Any

#: Probes answer 503 on purpose (starting, wedged, setup failed): not server errors.
PROBES = frozenset({"/health", "/ready"})

#: Latency buckets: prometheus-client's (5 ms to 10 s), then on to the worst case of a request
#: (waiting for a slot, then running up to its timeout, then written out): minutes, not 10 s.
BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    300.0,
    600.0,
    float("inf"),
)


class RequestCounts:
    """Request count, latency histogram and 5xx count, as a prometheus-client custom collector.

    A request adds to three plain numbers (one dictionary look-up, no lock: only the event
    loop's thread writes them, and /metrics reads them on that thread); the Prometheus series
    are built when scraped. prometheus-client's ``Counter`` and ``Histogram`` take a lock per
    increment, five per request, a tenth of a microsecond endpoint's time.
    """

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = list(buckets)  # upper bounds, the last one +Inf
        # (method, route, status) -> [count, seconds, per-bucket counts...]
        self.cells: dict[tuple[str, str, int], list[float]] = {}
        self.created: dict[tuple[str, str, int], float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [0, 0.0] + [0] * len(self.bounds)
            self.created[key] = time.time()
        cell[0] += 1
        cell[1] += seconds
        cell[2 + bisect.bisect_left(self.bounds, seconds)] += 1

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily(
            "http_requests",
            "Requests answered, by route and status.",
            labels=["method", "route", "status"],
        )
        errors = CounterMetricFamily(
            "http_server_errors",
            "Responses with a 5xx status, by route (a probe's 503 is its answer, not an error).",
            labels=["route"],
        )
        latency = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time from request to response, by route and status.",
            labels=["method", "route", "status"],
        )
        failed: dict[str, float] = {}
        for (method, route, status), cell in list(self.cells.items()):
            labels = [method, route, str(status)]
            created = self.created[method, route, status]
            requests.add_metric(labels, cell[0], created=created)
            if status >= 500 and not (status == 503 and route in PROBES):
                failed[route] = failed.get(route, 0) + cell[0]
            cumulative = list(itertools.accumulate(cell[2:]))
            buckets = [(_bound(b), n) for b, n in zip(self.bounds, cumulative, strict=True)]
            latency.add_metric(labels, buckets, cell[1])
        for route, count in failed.items():
            errors.add_metric([route], count)
        yield from (requests, latency, errors)


def _bound(value: float) -> str:
    from prometheus_client.utils import floatToGoString

    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class Metrics:
    """Prometheus metrics of this worker process.

    Each uvicorn worker process counts on its own (no PROMETHEUS_MULTIPROC_DIR files): run one
    worker per container and scale with replicas, so every scrape sees the whole process. The
    per-request series and the gauges are read at scrape time (see :class:`RequestCounts`).
    """

    def __init__(self) -> None:
        import prometheus_client as prom

        self.registry = registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = RequestCounts(BUCKETS)
        registry.register(self.requests)
        self.observe = self.requests.observe
        self.in_flight = prom.Gauge(
            "http_requests_in_flight", "Requests being answered now.", registry=registry
        )
        self.timeouts = prom.Counter(
            "notebook_timeouts",
            "Requests whose notebook code ran past the timeout.",
            ["route"],
            registry=registry,
        )
        self.overloaded = prom.Counter(
            "notebook_overload_rejections",
            "Requests refused with 503 because no slot was free in time.",
            ["route"],
            registry=registry,
        )
        self.timed_out_running = prom.Gauge(
            "notebook_timed_out_running",
            "Worker threads still running code that timed out (each holds a slot).",
            registry=registry,
        )
        self.slots = prom.Gauge(
            "notebook_slots",
            "Requests that may run notebook code at once (SERVICE_CONCURRENCY).",
            registry=registry,
        )
        self.slots_busy = prom.Gauge(
            "notebook_slots_busy",
            "Slots held now: notebook code running (in time or past its timeout).",
            registry=registry,
        )
        self.waiting = prom.Gauge(
            "notebook_requests_waiting",
            "Requests waiting for a slot now (at most SERVICE_QUEUE_LENGTH).",
            registry=registry,
        )
        prom.ProcessCollector(registry=registry)
        prom.PlatformCollector(registry=registry)
        prom.GCCollector(registry=registry)

    def watch_slots(self, slots: Any) -> None:
        """Read the admission gauges from ``slots`` (a :class:`~app.runtime.slots.Slots`)."""
        self.slots.set_function(lambda: slots.size)
        self.slots_busy.set_function(lambda: slots.busy)
        self.waiting.set_function(lambda: slots.waiting)
        self.timed_out_running.set_function(lambda: slots.timed_out_running)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format, for GET /metrics."""
        import prometheus_client as prom

        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
