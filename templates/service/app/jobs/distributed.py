"""The distributed engine: ``SERVICE_JOBS_URL=redis://...``, jobs on Celery with Redis.

Celery is the task queue: Redis is its broker (the queue a KEDA ScaledObject watches) and its
result store (each job's answer), its workers (``python -m app.worker``, from the same image)
run the jobs, its time limits stop a job past its timeout, and its revoke stops a cancelled one
(``terminate``: the worker's child process is killed and replaced, so the worker is free). The
service process only submits, reads and cancels: it runs no job itself.

Celery keeps no list of jobs, so :class:`RedisStore` keeps each job's record (route, status,
times, error) in a hash and their order in a sorted set, with the same conditional status
changes as the SQLite store (one Lua script, atomic in Redis). The worker writes ``running``
when it starts a job and how it ended once Celery has stored the answer (``task_postrun``);
a job whose worker was killed outright (a hard time limit, a lost worker) ends in Celery's own
``FAILURE`` state, which a read of the job carries over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any

from app.jobs.models import JobRecord
from app.jobs.running import JobRoute, execute, failure
from app.jobs.store import INTERRUPTED, Stats

__all__ = ["TASK", "CeleryEngine", "RedisStore", "Unavailable", "make_celery", "register_task"]

logger = logging.getLogger("app.jobs")

TASK = "promoter.job"
#: Finished jobs (and their answers, in Celery's result store) are kept this long.
KEEP_SECONDS = 7 * 24 * 3600
#: A cancelled or finished job's worker gets this much past the soft time limit to stop.
HARD_LIMIT_GRACE = 30.0

# Moves a job from one of ARGV[1] (comma-separated) to ARGV[2], stamping ARGV[4] with ARGV[3]
# and the error ARGV[5] (if any), and keeps the per-route counts in the stats hash.
_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or not string.find(',' .. ARGV[1] .. ',', ',' .. status .. ',', 1, true) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], ARGV[4], ARGV[3])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[5]) end
local route = redis.call('HGET', KEYS[1], 'route')
redis.call('HINCRBY', KEYS[2], 'count\\31' .. route .. '\\31' .. status, -1)
redis.call('HINCRBY', KEYS[2], 'count\\31' .. route .. '\\31' .. ARGV[2], 1)
if ARGV[4] == 'finished_at' then
  local started = redis.call('HGET', KEYS[1], 'started_at')
  if started then
    local seconds = tonumber(ARGV[3]) - tonumber(started)
    redis.call('HINCRBYFLOAT', KEYS[2], 'seconds\\31' .. route .. '\\31' .. ARGV[2], seconds)
  end
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
return 1
"""


class Unavailable(Exception):
    """Redis (the broker and the store) cannot be reached: the caller answers 503."""


def _redis_errors() -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import redis.exceptions

    return (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        kombu.exceptions.OperationalError,
    )


class RedisStore:
    """Job records in Redis: a hash per job, a sorted set for the order, a hash of counts."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=10, decode_responses=True
        )
        self.prefix = prefix
        self._order = f"{prefix}:jobs"
        self._stats = f"{prefix}:jobs:stats"
        self._transition = self.redis.register_script(_TRANSITION)

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def add(self, job: JobRecord) -> None:
        seq = self.redis.incr(f"{self.prefix}:jobs:seq")
        fields = {"route": job.route, "status": job.status, "submitted_at": repr(job.submitted_at)}
        with self.redis.pipeline() as pipe:  # MULTI/EXEC: all or nothing
            pipe.hset(self._key(job.id), mapping={**fields, "request": job.request})
            pipe.zadd(self._order, {job.id: seq})
            pipe.hincrby(self._stats, f"count\x1f{job.route}\x1fqueued", 1)
            pipe.execute()

    def drop(self, job_id: str) -> None:
        """Forget a job the broker refused (its submission answered 503)."""
        job = self.get(job_id)
        with self.redis.pipeline() as pipe:
            pipe.delete(self._key(job_id))
            pipe.zrem(self._order, job_id)
            if job is not None:
                pipe.hincrby(self._stats, f"count\x1f{job.route}\x1fqueued", -1)
            pipe.execute()

    def get(self, job_id: str) -> JobRecord | None:
        return _record(job_id, self.redis.hgetall(self._key(job_id)))

    def page(
        self, route: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        top = f"({cursor}" if cursor else "+inf"
        found: list[tuple[JobRecord, float]] = []
        while len(found) <= limit:
            batch = self.redis.zrevrangebyscore(
                self._order, top, "-inf", start=0, num=2 * limit + 1, withscores=True
            )
            if not batch:
                break
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id, _ in batch:
                    pipe.hgetall(self._key(job_id))
                records = pipe.execute()
            for (job_id, seq), fields in zip(batch, records, strict=True):
                job = _record(job_id, fields)
                if job is None:  # expired: its place in the order goes too
                    self.redis.zrem(self._order, job_id)
                elif (route is None or job.route == route) and (status in (None, job.status)):
                    found.append((job, seq))
            top = f"({batch[-1][1]:.0f}"
        more = len(found) > limit
        found = found[:limit]
        return [job for job, _ in found], (f"{found[-1][1]:.0f}" if more else None)

    def _move(
        self, job_id: str, sources: str, status: str, stamp: str, at: float, **kw: Any
    ) -> bool:
        error = kw.get("error")
        args = [sources, status, repr(at), stamp, "" if error is None else json.dumps(error)]
        return bool(self._transition([self._key(job_id), self._stats], [*args, KEEP_SECONDS]))

    def start(self, job_id: str, at: float) -> bool:
        return self._move(job_id, "queued", "running", "started_at", at)

    def finish(
        self,
        job_id: str,
        status: str,
        at: float,
        *,
        result: str | None = None,
        error: dict[str, str] | None = None,
    ) -> bool:
        # The answer itself stays in Celery's result store; the record keeps the rest.
        return self._move(job_id, "queued,running", status, "finished_at", at, error=error)

    def stats(self) -> Stats:
        counts: dict[tuple[str, str], list[float]] = {}
        for name, value in self.redis.hgetall(self._stats).items():
            kind, route, status = name.split("\x1f")
            cell = counts.setdefault((route, status), [0, 0.0])
            cell[0 if kind == "count" else 1] = float(value)
        return {key: (int(count), seconds) for key, (count, seconds) in counts.items()}


def _record(job_id: str, fields: dict[str, str]) -> JobRecord | None:
    if not fields:
        return None

    def seconds(name: str) -> float | None:
        value = fields.get(name)
        return None if value is None else float(value)

    return JobRecord(
        id=job_id,
        route=fields["route"],
        status=fields["status"],
        submitted_at=float(fields["submitted_at"]),
        request=fields.get("request", "{}"),
        started_at=seconds("started_at"),
        finished_at=seconds("finished_at"),
        error=json.loads(fields["error"]) if "error" in fields else None,
    )


def make_celery(url: str, queue: str, longest: float) -> Any:
    """The Celery app of the service: Redis as broker and result store, JSON only.

    ``longest`` is the longest job timeout: Redis hands an unacknowledged job to another
    worker after the visibility timeout, which must outlast any job that still runs.
    """
    from celery import Celery

    celery = Celery("app", broker=url, backend=url)
    celery.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A job is acknowledged once it ends: a worker that dies mid-job leaves it to be
        # redelivered, and the redelivered run finds it "running" and fails it (see below).
        task_acks_late=True,
        worker_prefetch_multiplier=1,  # long jobs: a worker takes one at a time
        result_expires=KEEP_SECONDS,
        worker_hijack_root_logger=False,  # the service's JSON log lines, in the worker too
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "socket_connect_timeout": 2,
            "visibility_timeout": int(longest + HARD_LIMIT_GRACE + 300),
        },
        redis_socket_connect_timeout=2,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2},
    )
    return celery


class CeleryEngine:
    """Submits jobs to Celery and reads them back; the workers are other processes."""

    started = True  # nothing to start in the service process

    def __init__(self, store: RedisStore, routes: dict[str, JobRoute], celery: Any) -> None:
        self.store = store
        self.routes = routes
        self.celery = celery

    def start(self) -> None:
        logger.info(
            "jobs: on Celery, queue %s; start workers with python -m app.worker",
            self.celery.conf.task_default_queue,
        )

    def stop(self) -> None:
        return None

    async def submit(self, job: JobRecord) -> None:
        await asyncio.to_thread(self._submit, job)

    def _submit(self, job: JobRecord) -> None:
        spec = self.routes[job.route]
        try:
            self.store.add(job)
        except _redis_errors() as error:
            raise Unavailable(str(error)) from error
        try:
            self.celery.send_task(
                TASK,
                args=[job.route],
                kwargs={"timeout": spec.timeout},  # the submitter's limit, named in an error
                task_id=job.id,
                soft_time_limit=spec.timeout,
                time_limit=spec.timeout + HARD_LIMIT_GRACE,
            )
        except _redis_errors() as error:  # stored but not queued: never leave it dangling
            try:
                self.store.drop(job.id)
            finally:
                raise Unavailable(str(error)) from error

    async def cancel(self, job: JobRecord) -> bool:
        return await asyncio.to_thread(self._cancel, job)

    def _cancel(self, job: JobRecord) -> bool:
        if not self.store.finish(job.id, "cancelled", time.time()):
            return False
        # A queued job is skipped by whichever worker takes it (the record says cancelled);
        # a running one is killed in its worker, whose pool starts a fresh process.
        self.celery.control.revoke(job.id, terminate=True, signal="SIGKILL")
        return True

    async def refresh(self, job: JobRecord) -> JobRecord:
        """The job with its answer from Celery's result store, or Celery's own failure."""
        return await asyncio.to_thread(self._refresh, job)

    def _refresh(self, job: JobRecord) -> JobRecord:
        if job.status == "succeeded":
            value = self.celery.AsyncResult(job.id).result
            job.result = value.get("result") if isinstance(value, dict) else None
            return job
        if job.status != "running":
            return job
        result = self.celery.AsyncResult(job.id)
        if result.state != "FAILURE":
            return job
        # Killed outright: past the hard time limit, or its worker process died.
        kind = "timeout" if type(result.result).__name__ == "TimeLimitExceeded" else INTERRUPTED[0]
        error = failure(kind, f"the job's worker stopped it: {result.result!r}", job.id)
        self.store.finish(job.id, "failed", time.time(), error=error)
        return self.store.get(job.id) or job


def register_task(celery: Any, store: RedisStore, routes: dict[str, JobRoute]) -> None:
    """In the worker: the task that runs a job, and the hook that records how it ended."""
    from celery.exceptions import SoftTimeLimitExceeded
    from celery.signals import task_postrun

    @celery.task(name=TASK, bind=True)  # type: ignore[untyped-decorator]
    def run_job(task: Any, route: str, timeout: float | None = None) -> dict[str, Any]:
        job_id = task.request.id
        job = store.get(job_id)
        if job is not None and job.status == "running":  # redelivered: its worker died
            kind, message = INTERRUPTED
            store.finish(job_id, "failed", time.time(), error=failure(kind, message, job_id))
            return {"status": "skipped"}
        if job is None or not store.start(job_id, time.time()):
            return {"status": "skipped"}  # cancelled before it started
        spec = routes[route]
        if timeout is not None:  # the limit Celery enforces is the one the service sent
            spec = dataclasses.replace(spec, timeout=timeout)
        status, value = execute(spec, job.request, job_id, (SoftTimeLimitExceeded,))
        return {"status": status, "result" if status == "succeeded" else "error": value}

    @task_postrun.connect(weak=False)  # type: ignore[untyped-decorator]
    def record(task_id: str, retval: Any = None, **_: Any) -> None:
        # After Celery has stored the answer: a reader that sees "succeeded" finds it.
        if isinstance(retval, dict) and retval.get("status") in ("succeeded", "failed"):
            status = retval["status"]
            store.finish(task_id, status, time.time(), error=retval.get("error"))
