"""The job form of every route (DESIGN.md section 3b): submit, read, cancel and list jobs.

``app/main.py`` declares ``POST /<route>/jobs`` beside each route (the same request model) and
calls :meth:`Jobs.submit`; :meth:`Jobs.install` adds ``GET /jobs/{id}``, ``DELETE /jobs/{id}``
and ``GET /jobs``, documented with the routes' own response models. The service's middleware
gives them what every route has: API keys, request ids, the log line and the request metrics;
:class:`JobCounts` adds the jobs' own series (queued, running, finished by status, duration).

Where jobs live is one setting, ``SERVICE_JOBS_URL``: a SQLite file (the default, under the
temporary folder; point it at a mounted volume to keep jobs across pods) with worker processes
inside the service, or ``redis://...`` for Celery workers started with ``python -m app.worker``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.jobs.models import (
    FINISHED,
    JobAccepted,
    JobRecord,
    JobStatus,
    job_body,
    job_model,
    page_model,
)
from app.jobs.running import JobRoute

__all__ = ["JOB_RESPONSES", "JobCounts", "JobSettings", "Jobs"]

logger = logging.getLogger("app.jobs")

JOB_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The request body cannot be decoded (not UTF-8 text, or too deep)."},
    401: {"description": "API keys are configured and `X-API-Key` is missing or wrong."},
    413: {"description": "The request body is larger than SERVICE_MAX_BODY_BYTES."},
    503: {
        "description": "The job store or broker cannot be reached, or the notebook's setup "
        "failed: retry after `Retry-After` seconds. Nothing was queued."
    },
}
_NOT_FOUND = {404: {"description": "No job has this id (or it expired)."}}
_ID = re.compile(r"[0-9a-f]{32}")
_CURSOR = "`next_cursor` of the previous page."


class JobSettings(BaseSettings):
    """The job settings, from ``SERVICE_*`` variables or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_", env_file=".env", extra="ignore")

    jobs_url: str = Field(
        default="",
        description="sqlite:///PATH (default: a file in the temporary folder) or redis://HOST.",
        pattern=r"^(|sqlite:///.+|rediss?://.*)$",
    )
    job_workers: int = Field(
        default=2,
        ge=1,
        description="Jobs running at once (embedded workers, or per Celery worker).",
    )
    job_timeout: float | None = Field(
        default=None, gt=0, description="Seconds, every route's jobs (overrides the notebook's)."
    )

    @property
    def distributed(self) -> bool:
        return self.jobs_url.startswith(("redis://", "rediss://"))


class Jobs:
    """The jobs of one service: its routes' job forms and the engine that runs them."""

    def __init__(self, name: str, settings: JobSettings | None = None) -> None:
        self.name = name
        self.settings = settings or JobSettings()
        self.routes: dict[str, JobRoute] = {}
        self.results: dict[str, type[BaseModel]] = {}
        #: Why jobs cannot run (the setup cells failed), set by the service.
        self.blocked: Callable[[], str | None] = lambda: None
        self._engine: Any = None

    def route(
        self,
        route: str,
        run: Callable[[Any], Any],
        request: type[BaseModel],
        response: type[BaseModel],
        *,
        timeout: float,
    ) -> None:
        """Give ``route`` a job form; its jobs may run ``timeout`` seconds (unless overridden)."""
        timeout = self.settings.job_timeout or timeout
        self.routes[route] = JobRoute(route, run, request, timeout)
        self.results[route] = response

    @property
    def url(self) -> str:
        """Where the jobs live (the default file is named after the service)."""
        if self.settings.jobs_url:
            return self.settings.jobs_url
        return f"sqlite:///{Path(tempfile.gettempdir()) / f'{self.name}-jobs.sqlite3'}"

    @property
    def engine(self) -> Any:
        """The embedded engine, or the Celery one for a ``redis://`` URL (made on first use)."""
        if self._engine is None:
            if self.settings.distributed:
                from app.jobs.distributed import CeleryEngine, RedisStore, make_celery

                longest = max((spec.timeout for spec in self.routes.values()), default=0)
                celery = make_celery(self.url, self.queue, longest)
                store = RedisStore(self.url, self.name)
                self._engine = CeleryEngine(store, self.routes, celery)
            else:
                from app.jobs.embedded import EmbeddedEngine
                from app.jobs.store import SqliteStore

                store = SqliteStore(Path(self.url.removeprefix("sqlite:///")))
                workers = self.settings.job_workers
                self._engine = EmbeddedEngine(store, self.routes, workers)
        return self._engine

    @property
    def queue(self) -> str:
        """The Celery queue (a Redis list) of this service's jobs."""
        return f"{self.name}-jobs"

    def start(self) -> None:
        """Once the setup cells have run: start the embedded workers (Celery: nothing)."""
        self.engine.start()

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.stop()

    async def submit(self, route: str, request: BaseModel) -> Response:
        """202 with the queued job and its ``Location``; 503 if it cannot be kept."""
        blocked = self.blocked()
        if blocked is not None:
            body = {"detail": "the notebook's setup cells failed; see the log", "error_id": blocked}
            return JSONResponse(body, 503)
        job = JobRecord(
            id=os.urandom(16).hex(),
            route=route,
            status="queued",
            submitted_at=time.time(),
            request=request.model_dump_json(by_alias=True),
        )
        try:
            await self.engine.submit(job)
        except Exception as error:
            return _unavailable(error)
        logger.info("job %s queued", job.id, extra={"job_id": job.id, "route": route})
        href = f"/jobs/{job.id}"
        accepted = JobAccepted(id=job.id, route=route, href=href)
        return JSONResponse(accepted.model_dump(), 202, {"Location": href})

    async def read(self, job_id: str) -> Response:
        """The job: its status, times, and the answer once it succeeded."""
        try:
            job = await self._get(job_id)
            if job is None:
                return _not_found(job_id)
            job = await self.engine.refresh(job)
        except Exception as error:
            return _unavailable(error)
        return Response(job_body(job), media_type="application/json")

    async def cancel(self, job_id: str) -> Response:
        """Cancel a queued or running job (its worker is stopped); 409 once it has finished."""
        try:
            job = await self._get(job_id)
            if job is None:
                return _not_found(job_id)
            if job.status in FINISHED or not await self.engine.cancel(job):
                job = await self._get(job_id) or job
                detail = f"job {job_id} has already finished ({job.status})"
                return JSONResponse({"detail": detail, "status": job.status}, 409)
            job = await self._get(job_id) or job
        except Exception as error:
            return _unavailable(error)
        logger.info("job %s cancelled", job_id, extra={"job_id": job_id, "route": job.route})
        return Response(job_body(job), media_type="application/json")

    async def listing(
        self,
        route: Annotated[str | None, Query(description="Only this route's jobs: /score.")] = None,
        status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
        limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 20,
        cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description=_CURSOR)] = None,
    ) -> Response:
        """Jobs, newest first, a page at a time."""
        import asyncio

        store = self.engine.store
        try:
            jobs, after = await asyncio.to_thread(store.page, route, status, limit, cursor)
            jobs = [await self.engine.refresh(job) for job in jobs]
        except Exception as error:
            return _unavailable(error)
        items = ", ".join(job_body(job) for job in jobs)
        tail = "null" if after is None else f'"{after}"'
        return Response(
            f'{{"jobs": [{items}], "next_cursor": {tail}}}', media_type="application/json"
        )

    async def _get(self, job_id: str) -> JobRecord | None:
        import asyncio

        if not _ID.fullmatch(job_id):
            return None
        job: JobRecord | None = await asyncio.to_thread(self.engine.store.get, job_id)
        return job

    def install(self, app: FastAPI, registry: Any = None) -> None:
        """Add ``GET /jobs/{id}``, ``DELETE /jobs/{id}`` and ``GET /jobs`` (and the metrics)."""
        job = job_model(self.results)
        page = page_model(job)
        tags = ["jobs"]
        one = {200: {"model": job}, **_NOT_FOUND, **JOB_RESPONSES}
        app.add_api_route(
            "/jobs/{job_id}",
            self.read,
            methods=["GET"],
            tags=tags,
            response_model=None,
            responses=one,
            summary="A job's status and answer",
        )
        cancel = {**one, 409: {"description": "The job has already finished."}}
        app.add_api_route(
            "/jobs/{job_id}",
            self.cancel,
            methods=["DELETE"],
            tags=tags,
            response_model=None,
            responses=cancel,
            summary="Cancel a job",
        )
        app.add_api_route(
            "/jobs",
            self.listing,
            methods=["GET"],
            tags=tags,
            response_model=None,
            responses={200: {"model": page}, **JOB_RESPONSES},
            summary="Jobs, newest first",
        )
        if registry is not None:
            registry.register(JobCounts(self))


def _not_found(job_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"no job with id {job_id!r}"}, 404)


def _unavailable(error: Exception) -> JSONResponse:
    """503 + Retry-After when the store or the broker is unreachable; anything else raises."""
    if not _is_unreachable(error):
        raise error
    logger.warning("job store or broker unreachable: %s", error)
    detail = "the job store or broker cannot be reached; retry shortly"
    return JSONResponse({"detail": detail}, 503, {"Retry-After": "5"})


def _is_unreachable(error: Exception) -> bool:
    from app.jobs import distributed

    if isinstance(error, distributed.Unavailable):
        return True
    try:
        return isinstance(error, distributed._redis_errors())
    except ImportError:  # embedded: no Redis client installed or needed
        return False


class JobCounts:
    """Prometheus series of the jobs, read from the store when scraped.

    ``jobs_queued`` and ``jobs_running`` (gauges), ``jobs_finished`` by status (a counter) and
    ``job_duration_seconds`` (a summary of the finished jobs' run time), per route.
    """

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        queued = GaugeMetricFamily("jobs_queued", "Jobs waiting for a worker.", labels=["route"])
        running = GaugeMetricFamily("jobs_running", "Jobs running now.", labels=["route"])
        finished = CounterMetricFamily(
            "jobs_finished", "Jobs finished, by status.", labels=["route", "status"]
        )
        duration = SummaryMetricFamily(
            "job_duration_seconds", "Run time of finished jobs.", labels=["route", "status"]
        )
        try:
            stats = self.jobs.engine.store.stats()
        except Exception:  # an unreachable store must not break the scrape of the rest
            logger.warning("job metrics: the store cannot be read", exc_info=True)
            stats = {}
        for (route, status), (count, seconds) in sorted(stats.items()):
            if status == "queued":
                queued.add_metric([route], count)
            elif status == "running":
                running.add_metric([route], count)
            else:
                finished.add_metric([route, status], count)
                duration.add_metric([route, status], count, seconds)
        yield from (queued, running, finished, duration)
