"""One job's notebook code, run where a worker runs it (an embedded worker or a Celery worker).

Both engines call :func:`execute`: the request is read back from its JSON (validated by the
route's request model, as the HTTP request was), the notebook's ``run`` answers it, and the
answer becomes JSON text with the converter the synchronous route uses. A failure is logged
with its traceback under an error id; the job keeps the type, the message and the id only.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = ["JobRoute", "Outcome", "execute", "failure"]

logger = logging.getLogger("app.jobs")

#: ("succeeded", the answer as JSON text) or ("failed", the error {type, message, error_id}).
Outcome = tuple[str, Any]


@dataclass(frozen=True)
class JobRoute:
    """One route's job form: its notebook code, request model and job timeout (seconds)."""

    route: str
    run: Callable[[Any], Any]
    request: type[BaseModel]
    timeout: float


def failure(kind: str, message: str, job_id: str, **extra: Any) -> dict[str, str]:
    """A job's error, logged under a new error id (the traceback too, inside an ``except``)."""
    error_id = os.urandom(16).hex()
    logger.error(
        "job %s failed: %s: %s (error id %s)",
        job_id,
        kind,
        message,
        error_id,
        exc_info=extra.pop("exc_info", False),
        extra={"job_id": job_id, "error_id": error_id, **extra},
    )
    return {"type": kind, "message": message, "error_id": error_id}


def execute(
    spec: JobRoute,
    request_json: str,
    job_id: str,
    timeouts: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Run the job's notebook code; never raises for an error of the notebook's code.

    ``timeouts`` are the exceptions a time limit raises inside the code (Celery's soft limit):
    the job then failed with the type ``timeout``.
    """
    # A context of its own: a forked worker must not log as the request it was forked during.
    return contextvars.Context().run(_execute, spec, request_json, job_id, timeouts)


def _execute(
    spec: JobRoute, request_json: str, job_id: str, timeouts: tuple[type[BaseException], ...]
) -> Outcome:
    from app.runtime import json_body  # the synchronous route's own JSON writer

    try:
        request = spec.request.model_validate_json(request_json)
        value = spec.run(request)
        if inspect.isawaitable(value):  # top-level await: an event loop of the job's own
            value = asyncio.run(_awaited(value))
        body: bytes = json_body(value)
    except timeouts:
        message = f"the job ran past its timeout of {spec.timeout:g} s and was stopped"
        return "failed", failure("timeout", message, job_id)
    except (Exception, SystemExit, KeyboardInterrupt) as error:
        message = str(error) or type(error).__name__
        return "failed", failure(type(error).__name__, message, job_id, exc_info=True)
    return "succeeded", body.decode()


async def _awaited(value: Any) -> Any:
    return await value
