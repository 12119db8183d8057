"""What the job API takes and answers (DESIGN.md section 3b), and a job as the stores keep it.

The answer models document the API in OpenAPI; the answers themselves are written from
:class:`JobRecord` by :func:`job_body`, so a result stored as JSON text is sent as it is, not
parsed and validated again.
"""

from __future__ import annotations

import functools
import json
import operator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

__all__ = [
    "FINISHED",
    "JobAccepted",
    "JobError",
    "JobRecord",
    "JobStatus",
    "job_body",
    "job_model",
    "page_model",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: The statuses a job never leaves.
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobError(BaseModel):
    """Why a job failed: the exception's type and message, and the id of its log line."""

    type: str = Field(description="The exception's type, or `timeout` / `interrupted`.")
    message: str
    error_id: str = Field(description="Find the traceback in the service's log by this id.")


class JobAccepted(BaseModel):
    """202: the job is stored and queued; poll `href`."""

    id: str
    route: str
    status: JobStatus = "queued"
    href: str = Field(description="The job's URL: GET it for the status and the result.")


class _JobBase(BaseModel):
    id: str
    route: str
    status: JobStatus
    submitted_at: str = Field(description="ISO 8601, UTC.")
    started_at: str | None = None
    finished_at: str | None = None
    error: JobError | None = None


def job_model(results: dict[str, type[BaseModel]]) -> type[BaseModel]:
    """``Job``: a job with ``result`` typed as its route's response model (one of them)."""
    models = tuple(dict.fromkeys(results.values()))
    result: Any = functools.reduce(operator.or_, models)  # one of the response models
    return create_model(
        "Job",
        __base__=_JobBase,
        __doc__="A job: its status, timestamps, and the route's answer once it succeeded.",
        result=(result | None, Field(default=None, description="Null until it succeeded.")),
    )


def page_model(job: type[BaseModel]) -> type[BaseModel]:
    """``JobPage``: one page of ``GET /jobs``, newest first."""
    return create_model(
        "JobPage",
        __doc__="Jobs, newest first; pass `next_cursor` as `cursor` for the next page.",
        jobs=(list[job], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, None),
    )


@dataclass
class JobRecord:
    """One job as a store keeps it (times are seconds since the epoch)."""

    id: str
    route: str
    status: str
    submitted_at: float
    request: str
    started_at: float | None = None
    finished_at: float | None = None
    result: str | None = None  # the route's answer, as JSON text
    error: dict[str, str] | None = None

    @property
    def seconds(self) -> float | None:
        """How long it ran, once finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def job_body(job: JobRecord) -> str:
    """The job as ``GET /jobs/{id}`` answers it, as JSON text (the result is inlined)."""
    head = {
        "id": job.id,
        "route": job.route,
        "status": job.status,
        "submitted_at": _iso(job.submitted_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "error": job.error,
    }
    text = json.dumps(head, ensure_ascii=False)
    result = job.result if job.result is not None else "null"
    return f'{text[:-1]}, "result": {result}}}'
