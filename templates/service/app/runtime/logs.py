"""Logs: one JSON (or text) line per record, the request's line made in batches."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from app.runtime.settings import Settings

logger = logging.getLogger("app")
request_logger = logging.getLogger("app.request")


@dataclass
class RequestState:
    """The request being answered (a context variable: its log lines, in any thread, see it)."""

    request_id: str
    error_id: str | None = None
    trace_id: str | None = None  # from a W3C ``traceparent`` header, when the caller sent one


current_request: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
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
    trace_id: str | None

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
        fields["trace_id"] = state.trace_id
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
        state = current_request.get()
        if state is not None:
            entry["request_id"] = state.request_id
            if state.trace_id is not None:
                entry["trace_id"] = state.trace_id
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
        if record.trace_id is not None:
            entry["trace_id"] = record.trace_id
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
            state = current_request.get()
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


# Requests whose log line is yet to be made (see log_request), oldest first.
_unlogged: collections.deque[tuple[str, str, str, int, float, RequestState, float]] = (
    collections.deque()
)


def log_request(
    method: str,
    route: str,
    path: str,
    status: int,
    seconds: float,
    state: RequestState,
    delay: float,
) -> None:
    """The request's log line, made later with the other requests' (see below).

    The record is made and handled by the logging module on the event loop within ``delay``
    seconds (``SERVICE_LOG_FLUSH_SECONDS``; at once when it is 0), in a batch: per request,
    the line costs an append here. Any other line a handler of the service writes, a flush, a
    fork, the app's end and the interpreter's exit make the waiting lines first.
    """
    if not request_logger.isEnabledFor(logging.INFO):
        return
    entry = (method, route, path, status, seconds, state, time.time())
    if delay <= 0:
        request_logger.handle(AccessRecord(*entry))
        return
    if not _unlogged:
        asyncio.get_running_loop().call_later(delay, _write_logs)
    _unlogged.append(entry)
    if len(_unlogged) >= 512:
        _log_requests()


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
    flush_logs()


def flush_logs() -> None:
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
    os.register_at_fork(before=flush_logs, after_in_child=_drop_inherited_lines)


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
