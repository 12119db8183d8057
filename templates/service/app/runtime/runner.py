"""Running notebook code: inline, in a worker thread or a worker process, under a timeout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from fastapi.responses import Response
from pydantic import BaseModel

from app.jsonable import dumps
from app.runtime.errors import error_response
from app.runtime.slots import CodeTimeout, Overloaded

if TYPE_CHECKING:
    from app.runtime.service import Service

logger = logging.getLogger("app")


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


def _starting_retry() -> int:
    """Seconds a client should wait while the setup cells run: 1 to 5, at random (spread)."""
    return random.randint(1, 5)


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
        """200 with the answer, or 500/503/504/507 with a reason (and an error id)."""
        service = self.service
        if not service.ready:
            if service.setup_error is not None:  # no retry helps: the pod must be replaced
                detail = "the notebook's setup cells failed; see the log"
                return error_response(503, detail, error_id=service.setup_error)
            return error_response(503, "the service is starting", retry_after=_starting_retry())
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
        try:
            taken = await self.service.slots.acquire()
        except Overloaded as refused:
            self.service.metrics.overloaded.labels(self.route).inc()
            detail = "every worker is busy; retry after the Retry-After seconds"
            return error_response(503, detail, retry_after=refused.retry_after)
        done = functools.partial(self.service.slots.finish, taken, timeout)
        try:
            if self.execution == "process":
                body = await self._process(call, args, timeout, done)
            else:
                body = await self._thread(call, args, timeout, done)
        except CodeTimeout:
            return self._timed_out()
        except NOTEBOOK_ERRORS:
            return self._failure()
        return Response(body, media_type="application/json")

    async def _thread(
        self,
        call: Callable[..., bytes],
        args: tuple[Any, ...],
        timeout: float,
        done: Callable[[], None],
    ) -> bytes:
        """In a worker thread; ``done`` frees the slot once the code has returned."""
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
            _when_done(future, functools.partial(slots.unstuck, done))
            raise CodeTimeout from None
        finally:
            if stuck:
                pass
            elif future.done():
                done()
            else:  # cancelled while the code runs: free the slot when it returns
                _when_done(future, done)

    async def _process(
        self,
        call: Callable[..., bytes],
        args: tuple[Any, ...],
        timeout: float,
        done: Callable[[], None],
    ) -> bytes:
        """In a pebble worker process, which a timeout kills; ``done`` frees the slot."""
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
                done()
            else:
                _when_done(future, done)

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
        return error_response(504, detail, error_id=error_id)

    def _failure(self) -> Response:
        error_id = os.urandom(16).hex()
        if isinstance(sys.exc_info()[1], MemoryError):  # the process is fine: the rest runs on
            logger.exception(
                "notebook code ran out of memory (error id %s)",
                error_id,
                extra={"error_id": error_id},
            )
            detail = "the request needs more memory than the service may use: ask for less"
            return error_response(507, detail, error_id=error_id)
        logger.exception(
            "notebook code failed (error id %s)", error_id, extra={"error_id": error_id}
        )
        return error_response(500, "the notebook code failed", error_id=error_id)
