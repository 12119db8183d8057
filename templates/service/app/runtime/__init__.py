"""The service's plumbing, the same in every service promoter generates (shipped verbatim).

``app/main.py`` holds the routes; everything they share lives in this package, one concept a
module:

- ``settings``: :class:`Settings`, every knob, from ``SERVICE_*`` variables or a ``.env`` file.
- ``service``: :class:`Service`, the FastAPI app with readiness, ``/health``, ``/ready``,
  ``/version``, ``/metrics`` and ``/docs`` served from local assets; :meth:`Service.runner`
  makes the callable that answers a notebook's route.
- ``runner``: :class:`Runner` runs one notebook request inline, in a worker thread or in a
  worker process (pebble, killed past the timeout); ``json_body`` writes the answer.
- ``slots``: :class:`Slots`, admission: at most ``concurrency`` requests run notebook code at
  once per worker process. A request that finds no free slot within ``queue_timeout`` seconds
  gets 503 with ``Retry-After``; 504 is only for code that ran past its timeout. A timed-out
  thread cannot be stopped, so it keeps its slot until it finishes; when every slot has been
  held by timed-out code for ``wedged_grace`` seconds, ``/health`` answers 503 so an
  orchestrator restarts the process.
- ``plumbing``: :class:`Plumbing`, one pure ASGI middleware (cheaper than a stack of them) for
  the request id, API keys, the body limit, the per-request log line and the metrics.
- ``logs``: :class:`JsonFormatter`, one JSON object per log line, with the request id;
  :class:`AccessRecord`, the per-request line; :class:`BatchedStreamHandler`, stderr written
  in batches from the event loop.
- ``metrics``: :class:`Metrics` and :class:`RequestCounts`, the per-request series.
- ``errors``: the documented error statuses, the JSON error body, and the 422 handler.
- ``connections``: :class:`GuardedH11Protocol`, uvicorn's HTTP protocol with a deadline for
  each request head and a cap on open connections (slow-header clients are closed); the
  Dockerfile runs uvicorn with ``--http app.runtime.connections:GuardedH11Protocol``.
"""

from app.runtime.errors import ERROR_RESPONSES
from app.runtime.logs import AccessRecord, BatchedStreamHandler, JsonFormatter, RequestState
from app.runtime.metrics import Metrics, RequestCounts
from app.runtime.plumbing import Plumbing
from app.runtime.runner import Runner, json_body
from app.runtime.service import Service
from app.runtime.settings import Settings
from app.runtime.slots import CodeTimeout, Overloaded, Slots

__all__ = [
    "ERROR_RESPONSES",
    "AccessRecord",
    "BatchedStreamHandler",
    "CodeTimeout",
    "JsonFormatter",
    "Metrics",
    "Overloaded",
    "Plumbing",
    "RequestCounts",
    "RequestState",
    "Runner",
    "Service",
    "Settings",
    "Slots",
    "json_body",
]
