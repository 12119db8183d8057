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
- :class:`JsonFormatter`: one JSON object per log line, with the request id.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import json
import logging
import multiprocessing
import os
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
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
    "JsonFormatter",
    "Plumbing",
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras, traceback."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
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
        try:
            return orjson.dumps(entry, default=str).decode()  # a line per request: ~10x json
        except TypeError:  # what orjson refuses (ints over 64 bits, non-str keys)
            return json.dumps(entry, ensure_ascii=False, default=str)

    def _time(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds (the seconds part is cached: a line per request)."""
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"


class _RequestIdFilter(logging.Filter):
    """Gives text-format records a ``request_id`` attribute."""

    def filter(self, record: logging.LogRecord) -> bool:
        state = _request.get()
        record.request_id = "-" if state is None else state.request_id
        return True


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger (JSON or text) that uvicorn's loggers share.

    The service logs each request itself (with its request id), so uvicorn's access log is
    silenced rather than doubled.
    """
    handler = logging.StreamHandler(sys.stderr)
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


class Metrics:
    """Prometheus metrics of this worker process.

    Each uvicorn worker process counts on its own (no PROMETHEUS_MULTIPROC_DIR files): run one
    worker per container and scale with replicas, so every scrape sees the whole process. The
    two gauges are read at scrape time, so a request pays only for a counter and a histogram.
    """

    def __init__(self) -> None:
        import prometheus_client as prom

        self.registry = registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = prom.Counter(
            "http_requests",
            "Requests answered, by route and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = prom.Histogram(
            "http_request_duration_seconds",
            "Time from request to response, by route.",
            ["method", "route"],
            registry=registry,
        )
        self.server_errors = prom.Counter(
            "http_server_errors",
            "Responses with a 5xx status, by route.",
            ["route"],
            registry=registry,
        )
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
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (label children are cached: labels() takes a lock)."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            errors = self.server_errors.labels(route) if status >= 500 else None
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
                errors,
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()

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
            self._log(scope, route, status, seconds, state)
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

    @staticmethod
    def _log(scope: Scope, route: str, status: int, seconds: float, state: RequestState) -> None:
        """The request's log line (a record made directly: no caller lookup on the hot path)."""
        if not request_logger.isEnabledFor(logging.INFO):
            return
        method, path, latency_ms = scope["method"], scope["path"], round(seconds * 1000, 3)
        record = logging.LogRecord(
            request_logger.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %d %.1f ms",
            (method, path, status, latency_ms),
            None,
        )
        record.method, record.route, record.path = method, route, path
        record.status, record.latency_ms = status, latency_ms
        if state.error_id is not None:
            record.error_id = state.error_id
        request_logger.handle(record)


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
    refuses (integers over 64 bits) goes through ``json``.
    """
    body: bytes = dumps(value)
    return body


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
        try:
            await service.slots.acquire()
        except Overloaded:
            service.metrics.overloaded.labels(self.route).inc()
            logger.warning("no slot free within %s s: 503", service.slots.wait)
            return _error(503, "every worker is busy; retry shortly", retry=True)
        try:
            if self.execution == "thread":
                body = await self._thread(request)
            else:
                body = await self._process(request)
        except CodeTimeout:
            return self._timed_out()
        except NOTEBOOK_ERRORS:
            return self._failure()
        return Response(body, media_type="application/json")

    async def _await(self, request: BaseModel) -> Response:
        """Await an async ``run`` (top-level ``await``) on the event loop, under the timeout.

        Awaited I/O of concurrent requests overlaps. It takes no worker slot (slots bound
        threads and processes); the timeout is the route's, none when ``inline``.
        """
        timeout = None if self.execution == "inline" else self.timeout
        try:
            async with asyncio.timeout(timeout) as deadline:
                value = await self.run(request)
            return Response(json_body(value), media_type="application/json")
        except TimeoutError:
            if deadline.expired():
                return self._timed_out()
            return self._failure()
        except NOTEBOOK_ERRORS:
            return self._failure()

    async def _thread(self, request: BaseModel) -> bytes:
        slots = self.service.slots
        context = contextvars.copy_context()  # the request id reaches the code's log lines
        future = self.service.threads.submit(context.run, _run_to_json, self.run, request)
        stuck = False
        try:
            async with asyncio.timeout(self.timeout):
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

    async def _process(self, request: BaseModel) -> bytes:
        slots = self.service.slots
        future = self.service.processes().schedule(
            _run_to_json, args=(self.run, request), timeout=self.timeout
        )
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
