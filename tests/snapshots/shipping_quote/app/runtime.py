"""The service's plumbing, the same in every service promoter generates (shipped verbatim).

``app/main.py`` holds the routes; everything they share lives here:

- :class:`Settings`: every knob, from ``SERVICE_*`` environment variables or a ``.env`` file.
- :class:`Service`: the FastAPI app with readiness, ``/health``, ``/ready``, ``/version``,
  ``/metrics`` and ``/docs`` served from local assets, and :meth:`Service.runner`, which runs one
  notebook request inline, in a worker thread or in a worker process.
- :class:`Slots`: at most ``concurrency`` requests run notebook code at once per worker process.
  A request that finds no free slot within ``queue_timeout`` seconds gets 503 with
  ``Retry-After``; 504 is only for code that ran past its timeout. A timed-out thread cannot be
  stopped, so it keeps its slot until it finishes; when every slot has been held by timed-out
  code for ``wedged_grace`` seconds, ``/health`` answers 503 so an orchestrator restarts the
  process. ``execution: "process"`` runs the code in pebble worker processes that a timeout kills.
- :class:`Plumbing`: one pure ASGI middleware (cheaper than a stack of them) for the request id,
  API keys, the body limit, the per-request log line and the metrics.
- :class:`JsonFormatter`: one JSON object per log line, with the request id;
  :class:`AccessRecord`, the per-request line; :class:`BatchedStreamHandler`, stderr written
  in batches from the event loop; :class:`RequestCounts`, the per-request metrics.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import contextvars
import inspect
import itertools
import json
import logging
import multiprocessing
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.jsonable import dumps

__all__ = [
    "ERROR_RESPONSES",
    "AccessRecord",
    "BatchedStreamHandler",
    "JsonFormatter",
    "Plumbing",
    "RequestCounts",
    "Service",
    "Settings",
    "Slots",
    "json_body",
]

logger = logging.getLogger("app")
request_logger = logging.getLogger("app.request")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The request body cannot be decoded (FastAPI: not UTF-8 text)."},
    401: {"description": "API keys are configured and `X-API-Key` is missing or wrong."},
    413: {"description": "The request body is larger than SERVICE_MAX_BODY_BYTES."},
    500: {"description": "The notebook code failed; the body has an `error_id` for the logs."},
    503: {
        "description": "The service is starting, or every slot stayed busy for "
        "SERVICE_QUEUE_TIMEOUT seconds: retry after `Retry-After` seconds."
    },
    504: {"description": "The notebook code ran past the route's timeout."},
}

# Paths that answer without an API key: probes, metrics, and the documentation itself.
OPEN_PATHS = frozenset(
    {"/health", "/ready", "/metrics", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
)
DOCS_ASSETS = "/docs-assets"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


# --------------------------------------------------------------------------------------------
# Settings


def _default_concurrency() -> int:
    return min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's own default


class Settings(BaseSettings):
    """Every setting of the service, read from ``SERVICE_*`` variables or ``.env``.

    Lists take JSON (``["a", "b"]``) or commas (``a,b``); ``SERVICE_TIMEOUTS`` takes JSON
    (``{"/route": 5}``).
    """

    model_config = SettingsConfigDict(env_prefix="SERVICE_", env_file=".env", extra="ignore")

    timeout: float | None = Field(
        default=None, gt=0, description="Seconds, every route (overrides)."
    )
    timeouts: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Seconds per route, e.g. {'/score': 5}."
    )
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Larger request bodies get 413."
    )
    concurrency: int = Field(
        default_factory=_default_concurrency,
        ge=1,
        description="Requests running notebook code at once, per worker process.",
    )
    queue_timeout: float = Field(
        default=10.0, ge=0, description="Seconds a request waits for a free slot before 503."
    )
    wedged_grace: float = Field(
        default=30.0,
        ge=0,
        description="Seconds all slots may be held by timed-out code before /health fails.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    log_flush_seconds: float = Field(
        default=0.05,
        ge=0,
        description="Seconds INFO lines may wait to be written together (0: each at once).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins", "api_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    def timeout_for(self, route: str, default: float) -> float:
        """The route's timeout: SERVICE_TIMEOUTS, else SERVICE_TIMEOUT, else the notebook's."""
        return self.timeouts.get(route, self.timeout or default)


# --------------------------------------------------------------------------------------------
# Logs


@dataclass
class RequestState:
    """The request being answered (a context variable: its log lines, in any thread, see it)."""

    request_id: str
    error_id: str | None = None


_request: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
    "request", default=None
)
# The attributes every LogRecord has; anything else came through `extra=` and is logged.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class AccessRecord(logging.LogRecord):
    """The request's log line as a record, made from a copy of one made at import.

    ``LogRecord()`` splits the source file's name and looks up the process's name for every
    record; the access line is the same record each time but for its values, which are set
    here (method, route, path, status, latency, request id, error id: no ``extra=`` dict). It
    is a real record: any handler or formatter added to the logging module takes it.
    """

    method: str
    route: str
    path: str
    status: int
    latency_ms: float
    request_id: str
    error_id: str | None

    def __init__(  # LogRecord.__init__ is not called, on purpose: see above
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        seconds: float,
        state: RequestState,
        created: float | None = None,
    ) -> None:
        fields = _ACCESS_FIELDS.copy()  # one copy of a dict is cheaper than 20 stores
        created = time.time() if created is None else created
        latency_ms = round(seconds * 1000, 3)
        fields["created"] = created
        fields["msecs"] = int((created - int(created)) * 1000) + 0.0
        fields["relativeCreated"] = (created - _LOGGING_STARTED) * 1000
        fields["thread"] = threading.get_ident()
        fields["threadName"] = threading.current_thread().name
        fields["process"] = os.getpid()
        fields["args"] = (method, path, status, latency_ms)
        fields["method"], fields["route"], fields["path"] = method, route, path
        fields["status"], fields["latency_ms"] = status, latency_ms
        fields["request_id"], fields["error_id"] = state.request_id, state.error_id
        self.__dict__ = fields


_ACCESS_MESSAGE = "%s %s %d %.1f ms"  # method, path, status, latency
_ACCESS_FIELDS = logging.LogRecord(
    request_logger.name, logging.INFO, __file__, 0, _ACCESS_MESSAGE, None, None
).__dict__
_LOGGING_STARTED: float = getattr(logging, "_startTime", time.time())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras, traceback."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        if type(record) is AccessRecord:
            return self._access(record)
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        state = _request.get()
        if state is not None:
            entry["request_id"] = state.request_id
        fields = record.__dict__
        for key in fields.keys() - _RECORD_FIELDS:  # what came through `extra=`
            entry[key] = fields[key]
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return _json_line(entry)

    def _access(self, record: AccessRecord) -> str:
        """The per-request line: its fields are known, so none is looked for."""
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": record.request_id,
            "method": record.method,
            "route": record.route,
            "path": record.path,
            "status": record.status,
            "latency_ms": record.latency_ms,
        }
        if record.error_id is not None:
            entry["error_id"] = record.error_id
        return _json_line(entry)

    def _time(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds (the seconds part is cached: a line per request)."""
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"


def _json_line(entry: dict[str, Any]) -> str:
    try:
        return orjson.dumps(entry, default=str).decode()  # a line per request: ~10x json
    except TypeError:  # what orjson refuses (ints over 64 bits, non-str keys, lone surrogates)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _RequestIdFilter(logging.Filter):
    """Gives text-format records a ``request_id`` attribute."""

    def filter(self, record: logging.LogRecord) -> bool:
        if type(record) is not AccessRecord:  # that one carries its own (made later)
            state = _request.get()
            record.request_id = "-" if state is None else state.request_id
        return True


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr, with the lines logged on the event loop written together.

    Made and written one by one, the per-request line cost a microsecond route ~15 % of its
    throughput (``make bench``), so INFO lines logged on the event loop wait up to ``delay``
    seconds and go out in one write; the request's own line (:class:`AccessRecord`, plain
    values only) is even formatted then, in the batch. A WARNING or worse, a line from another
    thread (notebook code in a worker) and ``delay`` 0 are written at once, after whatever
    waits (the order stays). Waiting lines are written at exit, before a fork and when the app
    stops; a killed process (SIGKILL, ``os._exit``) loses at most ``delay`` seconds of INFO.
    """

    def __init__(self, stream: Any, delay: float) -> None:
        super().__init__(stream)
        self.delay = delay
        self._lines: list[str | logging.LogRecord] = []
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # a flush is due on it

    def emit(self, record: logging.LogRecord) -> None:
        if _unlogged and type(record) is not AccessRecord:
            _log_requests()  # the lines of requests that ended before this one come first
        try:
            loop = _running_loop()
            batched = loop is not None and self.delay > 0 and record.levelno < logging.WARNING
            if batched and type(record) is AccessRecord:
                self._lines.append(record)
            else:
                self._lines.append(self.format(record))
            if loop is None or not batched or len(self._lines) >= 512:
                self.flush()
            elif self._timer_loop is not loop:
                loop.call_later(self.delay, self.flush)
                self._timer_loop = loop
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        _log_requests()
        self.acquire()
        try:
            self._timer_loop = None
            if self._lines:
                lines, self._lines = self._lines, []
                self.stream.write("".join([self._line(line) for line in lines]))
            if hasattr(self.stream, "flush"):
                self.stream.flush()
        finally:
            self.release()

    def _line(self, line: str | logging.LogRecord) -> str:
        if isinstance(line, str):
            return line + self.terminator
        try:
            return self.format(line) + self.terminator
        except Exception:
            self.handleError(line)
            return ""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # not on an event loop's thread
        return None


# Requests whose log line is yet to be made (see Plumbing._log), oldest first.
_unlogged: collections.deque[tuple[str, str, str, int, float, RequestState, float]] = (
    collections.deque()
)


def _log_requests() -> None:
    """Make the waiting requests' records and hand them to the logging module, in order."""
    batch = []
    while True:  # taken first, so a flush while they are handled finds none (no recursion)
        try:
            batch.append(_unlogged.popleft())  # atomic: a flush in another thread may race
        except IndexError:
            break
    for entry in batch:
        request_logger.handle(AccessRecord(*entry))


def _write_logs() -> None:
    _log_requests()
    _flush_logs()


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BatchedStreamHandler):
            handler.flush()


def _drop_inherited_lines() -> None:
    _unlogged.clear()  # the parent's requests: the parent writes their lines
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BatchedStreamHandler):
            handler._lines.clear()
            handler._timer_loop = None


if hasattr(os, "register_at_fork"):  # a forked worker must not write the parent's lines again
    os.register_at_fork(before=_flush_logs, after_in_child=_drop_inherited_lines)


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger (JSON or text) that uvicorn's loggers share.

    The service logs each request itself (with its request id), so uvicorn's access log is
    silenced rather than doubled.
    """
    handler = BatchedStreamHandler(sys.stderr, settings.log_flush_seconds)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    handler._promoter_service = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_promoter_service", False)]:
        old.flush()
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate = [], False
    access.setLevel(logging.WARNING)


# --------------------------------------------------------------------------------------------
# Metrics


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
            "http_server_errors", "Responses with a 5xx status, by route.", labels=["route"]
        )
        latency = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time from request to response, by route.",
            labels=["method", "route"],
        )
        per_route: dict[tuple[str, str], list[float]] = {}
        failed: dict[str, float] = {}
        for (method, route, status), cell in list(self.cells.items()):
            created = self.created[method, route, status]
            requests.add_metric([method, route, str(status)], cell[0], created=created)
            if status >= 500:
                failed[route] = failed.get(route, 0) + cell[0]
            total = per_route.setdefault((method, route), [0.0] * len(cell))
            for i, value in enumerate(cell):
                total[i] += value
        for route, count in failed.items():
            errors.add_metric([route], count)
        for (method, route), total in per_route.items():
            cumulative = list(itertools.accumulate(total[2:]))
            buckets = [(_bound(b), n) for b, n in zip(self.bounds, cumulative, strict=True)]
            latency.add_metric([method, route], buckets, total[1])
        yield from (requests, latency, errors)


def _bound(value: float) -> str:
    from prometheus_client.utils import floatToGoString

    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class Metrics:
    """Prometheus metrics of this worker process.

    Each uvicorn worker process counts on its own (no PROMETHEUS_MULTIPROC_DIR files): run one
    worker per container and scale with replicas, so every scrape sees the whole process. The
    per-request series and the two gauges are read at scrape time (see :class:`RequestCounts`).
    """

    def __init__(self) -> None:
        import prometheus_client as prom

        self.registry = registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = RequestCounts(prom.Histogram.DEFAULT_BUCKETS)
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
        prom.ProcessCollector(registry=registry)
        prom.PlatformCollector(registry=registry)
        prom.GCCollector(registry=registry)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format, for GET /metrics."""
        import prometheus_client as prom

        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST


# --------------------------------------------------------------------------------------------
# The middleware


class BodyTooLarge(HTTPException):
    """A streamed request body went over the limit.

    An HTTPException, because FastAPI turns any other error raised while it reads the body
    into a 400; this one FastAPI's exception middleware answers with its 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class Plumbing:
    """Request id, API keys, body limit, one log line and metrics per HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.log_delay = settings.log_flush_seconds
        self.keys = [key.get_secret_value().encode() for key in settings.api_keys]
        self.metrics = metrics
        self.active = 0  # requests in flight (read by the gauge at scrape time)
        self._paths: set[str] | None = None
        metrics.in_flight.set_function(lambda: self.active)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = declared = key = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
            elif name == b"x-api-key":
                key = value
        if request_id is None or not _REQUEST_ID.fullmatch(request_id):
            request_id = os.urandom(16).hex()
        state = RequestState(request_id)
        token = _request.set(state)
        status = 0  # until the response starts
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        self.active += 1
        try:
            if self.keys and scope["path"] not in OPEN_PATHS and not self._allowed(key, scope):
                await _plain(send_with_id, 401, {"detail": "missing or wrong X-API-Key header"})
            elif declared is not None and declared.isdigit() and int(declared) > self.limit:
                await self._too_large(send_with_id)
            else:
                await self._call(scope, receive, send_with_id)
        except Exception:
            state.error_id = os.urandom(16).hex()
            logger.exception("unhandled error (error id %s)", state.error_id)
            if status == 0:  # nothing sent yet (a started response keeps its status)
                body = {"detail": "internal error", "error_id": state.error_id}
                await _plain(send_with_id, 500, body)
        finally:
            self.active -= 1
            seconds = time.perf_counter() - start
            route = self._route(scope)
            status = status or 500
            self.metrics.observe(scope["method"], route, status, seconds)
            self._log(scope["method"], route, scope["path"], status, seconds, state)
            _request.reset(token)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        limit = self.limit

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:  # raised outside FastAPI's exception middleware
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await _plain(send, 413, {"detail": f"request body over {self.limit} bytes"})

    def _allowed(self, key: bytes | None, scope: Scope) -> bool:
        if scope["path"].startswith(DOCS_ASSETS + "/"):
            return True
        if key is None:
            return False
        # Compare with every key, in constant time per key, without stopping at a match.
        matched = False
        for candidate in self.keys:
            matched |= secrets.compare_digest(key, candidate)
        return matched

    def _route(self, scope: Scope) -> str:
        """The route's path, so label values stay bounded (401 and 413 never reach the router)."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        if self._paths is None:
            routes = scope["app"].routes if "app" in scope else []
            self._paths = {getattr(route, "path", "") for route in routes}
        return scope["path"] if scope["path"] in self._paths else "<unmatched>"

    def _log(
        self, method: str, route: str, path: str, status: int, seconds: float, state: RequestState
    ) -> None:
        """The request's log line, made later with the other requests' (see below).

        The record is made and handled by the logging module on the event loop within
        ``SERVICE_LOG_FLUSH_SECONDS`` (or at once when it is 0), in a batch: per request, the
        line costs an append here. Any other line a handler of the service writes, a flush, a
        fork, the app's end and the interpreter's exit make the waiting lines first.
        """
        if not request_logger.isEnabledFor(logging.INFO):
            return
        entry = (method, route, path, status, seconds, state, time.time())
        if self.log_delay <= 0:
            request_logger.handle(AccessRecord(*entry))
            return
        if not _unlogged:
            asyncio.get_running_loop().call_later(self.log_delay, _write_logs)
        _unlogged.append(entry)
        if len(_unlogged) >= 512:
            _log_requests()


async def _plain(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# --------------------------------------------------------------------------------------------
# Overload and timeouts


class Overloaded(Exception):
    """No slot became free within the queue timeout."""


class CodeTimeout(Exception):
    """The notebook code ran past its timeout."""


class Slots:
    """At most ``size`` requests run notebook code at once; timed-out threads keep their slot.

    ``wedged()`` is true once every slot has been held by timed-out code for ``grace`` seconds.
    """

    def __init__(
        self, size: int, wait: float, grace: float, metrics: Metrics | None = None
    ) -> None:
        self.size = size
        self.wait = wait
        self.grace = grace
        self.metrics = metrics
        self.timed_out_running = 0
        if metrics is not None:
            metrics.timed_out_running.set_function(lambda: self.timed_out_running)
        self._semaphore = asyncio.Semaphore(size)
        self._all_stuck_since: float | None = None

    async def acquire(self) -> None:
        """Take a slot, waiting at most ``wait`` seconds (then :class:`Overloaded`)."""
        if not self._semaphore.locked():
            await self._semaphore.acquire()  # free slot: no timer
            return
        try:
            async with asyncio.timeout(self.wait):
                await self._semaphore.acquire()
        except TimeoutError:
            raise Overloaded from None

    def release(self) -> None:
        self._semaphore.release()

    def stuck(self) -> None:
        """A slot's code timed out and still runs."""
        self.timed_out_running += 1
        if self.timed_out_running >= self.size and self._all_stuck_since is None:
            self._all_stuck_since = time.monotonic()

    def unstuck(self) -> None:
        """Timed-out code finished: its slot is free again."""
        self.timed_out_running -= 1
        self._all_stuck_since = None
        self.release()

    def wedged(self) -> bool:
        since = self._all_stuck_since
        return since is not None and time.monotonic() - since >= self.grace


# --------------------------------------------------------------------------------------------
# Running notebook code


def json_body(value: Any) -> bytes:
    """The one place a response value becomes JSON bytes.

    ``jsonable.dumps`` writes the JSON of ``to_jsonable(value)`` (the converter the notebook's
    own answer went through), tables column by column and the rest with orjson; what orjson
    refuses (integers over 64 bits) goes through ``json``. An answer made only of dicts with
    string keys, lists, tuples, strings, ints, floats, booleans and None (most answers of
    microsecond routes) is written by orjson directly: the same bytes (``to_jsonable`` leaves
    such values as they are, and orjson writes them either way), without the walk in Python.
    Any other type (subclasses, numpy, dates, dataclasses, models) sends the whole answer
    through ``jsonable.dumps``.
    """
    try:
        return orjson.dumps(value, default=_not_plain, option=_PLAIN_ONLY)
    except TypeError:  # orjson.JSONEncodeError: a type to convert, a big int, a lone surrogate
        pass
    body: bytes = dumps(value)
    return body


# orjson passes these to `default` instead of writing them its own way; enums and UUIDs it
# writes as to_jsonable does (the value; the str).
_PLAIN_ONLY = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _not_plain(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _run_to_json(run: Callable[[Any], Any], request: Any) -> bytes:
    """Runs in a worker thread or process; JSON bytes always travel back (and pickle)."""
    value = run(request)
    if inspect.isawaitable(value):  # an async run in a worker process: its own event loop
        value = asyncio.run(value)  # type: ignore[arg-type]
    return json_body(value)


def _error(
    status: int, detail: str, *, retry: bool = False, error_id: str | None = None
) -> Response:
    content: dict[str, Any] = {"detail": detail}
    if error_id is not None:
        content["error_id"] = error_id
        state = _request.get()
        if state is not None:
            state.error_id = error_id  # the request's log line carries it too
    return JSONResponse(content, status, {"Retry-After": "1"} if retry else None)


def _when_done(future: concurrent.futures.Future[Any], then: Callable[[], None]) -> None:
    """Call ``then`` on the event loop once ``future`` (running elsewhere) has finished."""
    loop = asyncio.get_running_loop()
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(then))


#: What notebook code may raise: ``sys.exit()`` and ``KeyboardInterrupt`` are errors of the
#: notebook's code here (a 500 with an error id), not requests to stop the server. (``os._exit``
#: ends the worker process itself: use ``execution: "process"`` for code that may call it.)
NOTEBOOK_ERRORS = (Exception, SystemExit, KeyboardInterrupt)


@dataclass
class Runner:
    """Answers one route: runs the notebook's ``run`` for a validated request."""

    service: Service
    route: str
    run: Callable[[Any], Any]
    execution: Literal["inline", "thread", "process"]
    timeout: float

    async def __call__(self, request: BaseModel) -> Response:
        """200 with the answer, or 500/503/504 with a reason (and an error id for 500/504)."""
        service = self.service
        if not service.ready:
            if service.setup_error is not None:  # no retry helps: the pod must be replaced
                detail = "the notebook's setup cells failed; see the log"
                return _error(503, detail, error_id=service.setup_error)
            return _error(503, "the service is starting", retry=True)
        if inspect.iscoroutinefunction(self.run) and self.execution != "process":
            return await self._await(request)
        if self.execution == "inline":
            try:
                return Response(json_body(self.run(request)), media_type="application/json")
            except NOTEBOOK_ERRORS:
                return self._failure()
        # The answer's JSON is written in the worker too, under the timeout: a large answer
        # takes seconds to write, which on the event loop would stall every request and /health.
        return await self._in_worker(_run_to_json, self.run, request, timeout=self.timeout)

    async def _await(self, request: BaseModel) -> Response:
        """Await an async ``run`` (top-level ``await``) on the event loop, under the timeout.

        Awaited I/O of concurrent requests overlaps. The awaiting takes no worker slot (slots
        bound threads and processes); the answer's JSON is then written in a worker thread with
        what is left of the timeout. ``inline`` routes do both on the loop, with no timeout.
        """
        inline = self.execution == "inline"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None if inline else self.timeout) as deadline:
                value = await self.run(request)
            if inline:
                return Response(json_body(value), media_type="application/json")
        except TimeoutError:
            if deadline.expired():
                return self._timed_out()
            return self._failure()
        except NOTEBOOK_ERRORS:
            return self._failure()
        when = deadline.when()
        left = self.timeout if when is None else when - loop.time()
        if left <= 0:
            return self._timed_out()
        return await self._in_worker(json_body, value, timeout=left)

    async def _in_worker(self, call: Callable[..., bytes], *args: Any, timeout: float) -> Response:
        """``call(*args)`` in a worker thread or process, holding a slot, under ``timeout``."""
        slots = self.service.slots
        try:
            await slots.acquire()
        except Overloaded:
            self.service.metrics.overloaded.labels(self.route).inc()
            logger.warning("no slot free within %s s: 503", slots.wait)
            return _error(503, "every worker is busy; retry shortly", retry=True)
        try:
            if self.execution == "process":
                body = await self._process(call, args, timeout)
            else:
                body = await self._thread(call, args, timeout)
        except CodeTimeout:
            return self._timed_out()
        except NOTEBOOK_ERRORS:
            return self._failure()
        return Response(body, media_type="application/json")

    async def _thread(
        self, call: Callable[..., bytes], args: tuple[Any, ...], timeout: float
    ) -> bytes:
        slots = self.service.slots
        context = contextvars.copy_context()  # the request id reaches the code's log lines
        future = self.service.threads.submit(context.run, call, *args)
        stuck = False
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            if future.done():  # it finished right at the deadline (or raised TimeoutError)
                return future.result()
            stuck = True  # a thread cannot be stopped: it keeps its slot until it returns
            slots.stuck()
            _when_done(future, slots.unstuck)
            raise CodeTimeout from None
        finally:
            if stuck:
                pass
            elif future.done():
                slots.release()
            else:  # cancelled while the code runs: free the slot when it returns
                _when_done(future, slots.release)

    async def _process(
        self, call: Callable[..., bytes], args: tuple[Any, ...], timeout: float
    ) -> bytes:
        slots = self.service.slots
        future = self.service.processes().schedule(call, args=args, timeout=timeout)
        try:
            return await asyncio.wrap_future(future)
        except TimeoutError:
            raise CodeTimeout from None  # pebble has killed the worker process
        except Exception as error:
            remote = getattr(error, "traceback", None)  # pebble: the worker's traceback
            if remote:
                logger.error("in the worker process:\n%s", remote)
            raise
        finally:
            if future.done():
                slots.release()
            else:
                _when_done(future, slots.release)

    def _timed_out(self) -> Response:
        self.service.metrics.timeouts.labels(self.route).inc()
        error_id = os.urandom(16).hex()
        logger.error(
            "the notebook code ran past %g s (error id %s)",
            self.timeout,
            error_id,
            extra={"error_id": error_id},
        )
        detail = f"the notebook code took longer than {self.timeout:g} s"
        return _error(504, detail, error_id=error_id)

    def _failure(self) -> Response:
        error_id = os.urandom(16).hex()
        logger.exception(
            "notebook code failed (error id %s)", error_id, extra={"error_id": error_id}
        )
        return _error(500, "the notebook code failed", error_id=error_id)


# --------------------------------------------------------------------------------------------
# The service


class Version(BaseModel):
    """GET /version."""

    service: str
    version: str
    promoter: str
    notebooks: dict[str, str] = Field(description="Source notebook -> its sha256.")


@dataclass
class Service:
    """One generated service: settings, the app, and the runners of its routes."""

    name: str
    version: str
    promoter_version: str
    notebooks: dict[str, str]
    setups: Sequence[Callable[[], Any]]
    settings: Settings = field(default_factory=lambda: Settings())
    ready: bool = False
    setup_error: str | None = None
    runners: list[Runner] = field(default_factory=list)

    def __post_init__(self) -> None:
        configure_logging(self.settings)
        self.metrics = Metrics()
        self.slots = Slots(
            self.settings.concurrency,
            self.settings.queue_timeout,
            self.settings.wedged_grace,
            self.metrics,
        )
        self.threads = concurrent.futures.ThreadPoolExecutor(
            self.settings.concurrency, thread_name_prefix="notebook"
        )
        self._processes: Any = None
        from app.jobs import Jobs

        self.jobs = Jobs(self.name)
        self.jobs.blocked = lambda: self.setup_error

    def runner(
        self,
        route: str,
        run: Callable[[Any], Any],
        *,
        execution: Literal["inline", "thread", "process"],
        timeout: float,
    ) -> Runner:
        """The callable that answers ``route`` (its timeout may come from the settings)."""
        runner = Runner(self, route, run, execution, self.settings.timeout_for(route, timeout))
        self.runners.append(runner)
        return runner

    def processes(self) -> Any:
        """The pebble pool, made after setup so forked workers start with its state."""
        if self._processes is None:
            import pebble

            context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
            self._processes = pebble.ProcessPool(self.settings.concurrency, context=context)
        return self._processes

    def create_app(self, *, title: str, description: str) -> FastAPI:
        """The FastAPI app with the operations routes and the plumbing middleware."""
        from fastapi_offline import FastAPIOffline

        app = FastAPIOffline(
            title=title,
            version=self.version,
            description=description,
            lifespan=self._lifespan,
            static_url=DOCS_ASSETS,
            favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )
        app.add_middleware(Plumbing, settings=self.settings, metrics=self.metrics)
        app.add_exception_handler(RequestValidationError, invalid_request)
        if self.settings.cors_origins:
            app.add_middleware(
                CORSMiddleware,
                allow_origins=self.settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["*"],
                expose_headers=["X-Request-ID"],
            )
        app.add_api_route("/health", self.health, methods=["GET"], tags=["operations"])
        app.add_api_route("/ready", self.ready_probe, methods=["GET"], tags=["operations"])
        app.add_api_route("/version", self.version_info, methods=["GET"], tags=["operations"])
        app.add_api_route("/metrics", self.metrics_text, methods=["GET"], include_in_schema=False)
        if self.settings.api_keys:
            _declare_api_key(app)
        return app

    async def health(self) -> JSONResponse:
        """Liveness: 503 when the setup cells failed or every slot is wedged by timed-out code."""
        if self.setup_error is not None:
            return JSONResponse({"status": "setup failed", "error_id": self.setup_error}, 503)
        if self.slots.wedged():
            stuck = self.slots.timed_out_running
            return JSONResponse({"status": "wedged", "timed_out_running": stuck}, 503)
        return JSONResponse({"status": "ok"})

    async def ready_probe(self) -> JSONResponse:
        """Readiness: every notebook's setup cells have run (503 while they run, or failed)."""
        if self.setup_error is not None:
            return JSONResponse({"status": "setup failed", "error_id": self.setup_error}, 503)
        if not self.ready:
            return JSONResponse({"status": "starting"}, 503)
        return JSONResponse({"status": "ready"})

    async def version_info(self) -> Version:
        """The service's version, the promoter that generated it, and its notebooks' hashes."""
        return Version(
            service=self.name,
            version=self.version,
            promoter=self.promoter_version,
            notebooks=self.notebooks,
        )

    async def metrics_text(self) -> Response:
        """Prometheus metrics (text format)."""
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    async def _setup(self) -> None:
        try:
            for setup in self.setups:
                if inspect.iscoroutinefunction(setup):
                    await setup()  # top-level `await`: on the loop the requests run on
                else:
                    await asyncio.to_thread(setup)  # /health answers while a model loads
        except Exception:
            self.setup_error = os.urandom(16).hex()
            logger.exception("setup failed (error id %s)", self.setup_error)
            return
        if any(r.execution == "process" for r in self.runners):
            await asyncio.to_thread(self.processes)
        await asyncio.to_thread(self.jobs.start)  # the job workers fork with the setup's state
        self.ready = True
        logger.info("ready")

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Run the setup (in a thread, or on the loop when async): /health answers meanwhile."""
        if not self.settings.api_keys:
            logger.warning("API-key auth is off: set SERVICE_API_KEYS to require X-API-Key")
        # The router tries routes in order (~3 us each): the notebook routes go first.
        mine = {runner.route for runner in self.runners}
        app.router.routes.sort(key=lambda route: getattr(route, "path", None) not in mine)
        setup = asyncio.create_task(self._setup())
        yield
        await setup
        await asyncio.to_thread(self.jobs.stop)
        _flush_logs()
        if self._processes is not None:
            self._processes.stop()
            self._processes.join(timeout=10)
        self.threads.shutdown(wait=False, cancel_futures=True)


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with the field paths, always as JSON.

    FastAPI's own handler echoes each bad input, and fails (a 500) on one JSON cannot carry:
    ``NaN``, ``Infinity``, ``1e400`` or a lone surrogate. Such an input is shown by its repr.
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "type": error.get("type"),
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg"),
            "input": _json_safe(error.get("input")),
        }
        for error in errors
    ]
    return JSONResponse({"detail": detail}, 422)


#: An echoed input nested deeper than this is not echoed: near the recursion limit it may
#: pass the check below and still fail when the response is rendered, deeper in the stack.
_ECHO_DEPTH = 64


def _json_safe(value: Any) -> Any:
    if _deeper_than(value, _ECHO_DEPTH):
        return f"<input nested deeper than {_ECHO_DEPTH} levels>"
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        return repr(value)
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists/dicts in ``value`` nest deeper than ``limit`` (no recursion: a loop)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return False


def _declare_api_key(app: FastAPI) -> None:
    """Tell the OpenAPI schema (and the docs' Authorize button) about the X-API-Key header."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {
                "APIKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            }
            for path, operations in schema.get("paths", {}).items():
                if path not in OPEN_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"APIKey": []}]
        return app.openapi_schema or schema

    app.openapi = openapi  # type: ignore[method-assign]
