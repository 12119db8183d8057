"""The embedded engine: jobs in a SQLite file, run by worker processes of the service itself.

Nothing to install or start. The workers are a pebble process pool forked once the setup
cells have run (each starts with what they loaded); pebble queues the jobs, stops one that
runs past its timeout and stops a cancelled one while it runs, and replaces the stopped worker,
so a cancel frees its worker at once. A worker marks its job running in the file; the service
writes how it ended. A restart finds the file as the last process left it: the jobs that were
running failed (their worker died with the process), the queued ones run again, oldest first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import sys
import time
from typing import Any

from app.jobs.models import JobRecord
from app.jobs.running import JobRoute, Outcome, execute, failure
from app.jobs.store import INTERRUPTED, SqliteStore

__all__ = ["EmbeddedEngine"]

logger = logging.getLogger("app.jobs")

#: The engine whose pool this process belongs to (a forked worker finds it here).
_engine: EmbeddedEngine | None = None


class EmbeddedEngine:
    """Runs the jobs of ``store`` in ``workers`` processes forked from the service."""

    def __init__(self, store: SqliteStore, routes: dict[str, JobRoute], workers: int) -> None:
        self.store = store
        self.routes = routes
        self.workers = workers
        self._pool: Any = None
        self._futures: dict[str, concurrent.futures.Future[Outcome]] = {}
        self._stopping = False

    def start(self) -> None:
        """After setup: fork the workers, fail what a previous process left running, re-queue."""
        global _engine
        import pebble

        _engine = self
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        self._pool = pebble.ProcessPool(self.workers, initializer=_reopen, context=context)
        queued = self.store.recover(time.time(), error_id := os.urandom(16).hex())
        logger.info(
            "jobs: %d worker processes, %d queued jobs to run (store %s)",
            self.workers,
            len(queued),
            self.store.path,
            extra={"error_id": error_id},
        )
        for job_id in queued:
            job = self.store.get(job_id)
            if job is not None:
                self._schedule(job)

    def stop(self) -> None:
        """Stop the workers; the jobs they ran fail now, the queued ones wait for a restart."""
        self._stopping = True
        if self._pool is None:
            return
        running = [job_id for job_id, future in self._futures.items() if future.running()]
        self._pool.stop()
        self._pool.join(timeout=10)
        kind, message = INTERRUPTED
        for job_id in running:
            error = failure(kind, message, job_id)
            self.store.finish(job_id, "failed", time.time(), error=error)

    @property
    def started(self) -> bool:
        return self._pool is not None

    async def submit(self, job: JobRecord) -> None:
        """Keep the job; run it once the workers exist (at once, when they do)."""
        await asyncio.to_thread(self.store.add, job)
        if self._pool is not None and not self._stopping:
            self._schedule(job)

    async def cancel(self, job: JobRecord) -> bool:
        """Cancel a queued or running job (its worker is stopped); False if it had finished."""
        if not await asyncio.to_thread(self.store.finish, job.id, "cancelled", time.time()):
            return False
        future = self._futures.get(job.id)
        if future is not None:
            future.cancel()  # pebble stops the worker running it and starts a fresh one
        return True

    async def refresh(self, job: JobRecord) -> JobRecord:
        """The job as it is (the workers write its status to the store themselves)."""
        return job

    def _schedule(self, job: JobRecord) -> None:
        spec = self.routes.get(job.route)
        if spec is None:  # a job of a route this version of the service no longer has
            error = failure("unknown_route", f"this service has no route {job.route}", job.id)
            self.store.finish(job.id, "failed", time.time(), error=error)
            return
        future = self._pool.schedule(_run, args=(job.id, job.route), timeout=spec.timeout)
        self._futures[job.id] = future
        future.add_done_callback(lambda done: self._done(job.id, spec, done))

    def _done(
        self, job_id: str, spec: JobRoute, future: concurrent.futures.Future[Outcome]
    ) -> None:
        """In pebble's thread: write how the job ended (a cancel has written it already)."""
        self._futures.pop(job_id, None)
        if self._stopping or future.cancelled():
            return
        try:
            status, value = future.result()
        except TimeoutError:
            message = f"the job ran past its timeout of {spec.timeout:g} s and was stopped"
            status, value = "failed", failure("timeout", message, job_id)
        except Exception as error:  # the worker process died (os._exit, a signal, memory)
            message = f"the job's worker process ended: {error}"
            status, value = "failed", failure(type(error).__name__, message, job_id)
        if status == "skipped":  # cancelled before it started
            return
        if status == "succeeded":
            self.store.finish(job_id, status, time.time(), result=value)
            logger.info("job %s succeeded", job_id, extra={"job_id": job_id})
        else:
            self.store.finish(job_id, status, time.time(), error=value)


def _reopen() -> None:
    """In each new worker: a database connection of its own, and death with the service.

    A worker outliving a killed service would keep running a job the restarted service has
    already marked failed: on Linux the kernel kills it when the service dies.
    """
    if sys.platform == "linux":
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if _engine is not None:
        _engine.store.reopen()
        _fresh_locks(_engine.routes.values())


def _fresh_locks(routes: Any) -> None:
    """A route that answers one request at a time holds ``promoter_lock`` while it runs.

    A worker forked while a request held it would inherit it held, forever: the worker gets
    a new, free lock (it runs one job at a time anyway).
    """
    import threading

    for spec in routes:
        module = sys.modules.get(getattr(spec.run, "__module__", ""))
        lock = getattr(module, "promoter_lock", None)
        if isinstance(lock, type(threading.Lock())):
            module.promoter_lock = threading.Lock()  # type: ignore[union-attr]


def _run(job_id: str, route: str) -> Outcome:
    """In a worker process: mark the job running, then run it (unless it was cancelled)."""
    engine = _engine
    if engine is None:  # a spawned worker (not Linux) has no engine: it was never forked
        raise RuntimeError("embedded job workers need the fork start method (Linux)")
    if not engine.store.start(job_id, time.time()):
        return "skipped", None
    job = engine.store.get(job_id)
    if job is None:
        return "skipped", None
    return execute(engine.routes[route], job.request, job_id)
