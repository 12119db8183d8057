"""Kernel runs of the JupyterLab extension: a bounded queue of worker processes.

Each inspect or convert run is a ``Job`` that the ``Runner`` starts in its own worker process
(``promoter.frontends.jupyter_worker``), at most ``limit`` at once, first come first served; the
worker streams progress lines and one result line. Cancelling kills the worker and its kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psutil
from jupyter_core.utils import ensure_event_loop

__all__ = ["Job", "Runner", "in_thread", "internal_error", "kill_tree"]

_T = TypeVar("_T")
# Finished jobs are kept this long so a slow poller still reads the result.
_KEEP_FINISHED = 50
_LINE_LIMIT = 256 * 1024 * 1024


async def in_thread(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a blocking library call in a worker thread, off the server's event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(_isolated, func, *args, **kwargs))


def _isolated(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Call ``func`` in an empty context, then close any event loop made for it.

    jupyter_core's ``run_sync`` keeps "this thread's loop" in a context variable. An empty
    context keeps the server's running loop out of reach (``asyncio.to_thread`` would copy it
    in: "This event loop is already running"), and closing the loop afterwards keeps pool
    threads from holding an open loop, and its sockets, until the server exits.
    """
    context = contextvars.Context()
    try:
        return context.run(func, *args, **kwargs)
    finally:
        context.run(_close_thread_loop)


def _close_thread_loop() -> None:
    ensure_event_loop().close()
    asyncio.set_event_loop(None)


def kill_tree(pid: int) -> None:
    """Kill a process and everything under it (a worker's kernel, uvicorn's children).

    SIGKILL, without waiting: the worker is reaped by whoever waits on it (its asyncio
    subprocess), the kernel by init once its parent is gone.
    """
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@dataclass
class Job:
    """One inspect or convert run: queued, then running in a worker process, then finished."""

    id: str
    action: str
    request: dict[str, Any]
    notebook: str
    created: float = field(default_factory=time.monotonic)
    state: str = "queued"  # queued | running | done | failed | cancelled
    done: int = 0
    total: int = 0
    status: int | None = None
    result: dict[str, Any] | None = None
    pid: int | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def to_dict(self, position: int | None) -> dict[str, Any]:
        """The job as the browser polls it (``position``: runs ahead of it in the queue)."""
        return {
            "id": self.id,
            "action": self.action,
            "notebook": self.notebook,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "position": position,
            "status": self.status,
            "result": self.result,
        }


class Runner:
    """Runs jobs in worker processes, at most ``limit`` at once, first come first served."""

    def __init__(self, limit: int, log: Any) -> None:
        self.limit = limit
        self.log = log
        self.jobs: dict[str, Job] = {}
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, action: str, request: dict[str, Any], notebook: str) -> Job:
        """Queue a run; it starts as soon as a slot is free."""
        job = Job(secrets.token_hex(8), action, request, notebook)
        self.jobs[job.id] = job
        self._forget_old()
        task = asyncio.ensure_future(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def position(self, job: Job) -> int | None:
        """How many queued jobs are ahead of ``job`` (``None`` unless it is queued)."""
        if job.state != "queued":
            return None
        return sum(1 for j in self.jobs.values() if j.state == "queued" and j.created < job.created)

    def running(self) -> int:
        """Jobs whose worker (and kernel) is alive now."""
        return sum(1 for j in self.jobs.values() if j.state == "running")

    def cancel(self, job: Job) -> None:
        """Stop a job: drop it from the queue, or kill its worker and its kernel."""
        if job.finished.is_set():
            return
        job.state = "cancelled"
        job.status, job.result = 499, {"error": "Cancelled", "message": "the run was cancelled"}
        if job.pid is not None:
            kill_tree(job.pid)
        job.finished.set()

    def shutdown(self) -> None:
        """Cancel every job (the server is stopping)."""
        for job in list(self.jobs.values()):
            self.cancel(job)

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.finished.is_set()]
        for job in finished[: max(0, len(finished) - _KEEP_FINISHED)]:
            del self.jobs[job.id]

    async def _run(self, job: Job) -> None:
        async with self._slots:
            if job.state == "cancelled":
                return
            job.state = "running"
            try:
                await self._work(job)
            except Exception as exc:
                self.log.exception("promoter: job %s failed", job.id)
                job.status, job.result = 500, internal_error(exc)
            if job.state != "cancelled":
                job.state = "done" if job.status == 200 else "failed"
            job.finished.set()

    async def _work(self, job: Job) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "promoter.frontends.jupyter_worker",
            # The result is one JSON line; a big sample response outgrows the 64 KiB default.
            limit=_LINE_LIMIT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        job.pid = process.pid
        if job.state == "cancelled":  # cancelled while the process started
            kill_tree(process.pid)
        assert process.stdin and process.stdout and process.stderr
        process.stdin.write(json.dumps({"action": job.action, **job.request}).encode())
        process.stdin.close()
        stderr = asyncio.ensure_future(process.stderr.read())
        async for line in process.stdout:
            message = json.loads(line)
            if "progress" in message:
                job.done, job.total = message["progress"]
            elif "status" in message:
                job.status, job.result = message["status"], message["result"]
        await process.wait()
        errors = (await stderr).decode(errors="replace")
        if job.state == "cancelled":
            return
        if job.status is None:
            tail = "\n".join(errors.strip().splitlines()[-5:])
            job.status, job.result = (
                500,
                internal_error(
                    RuntimeError(f"the worker exited with {process.returncode}: {tail}")
                ),
            )
        if job.status == 500 and job.result is not None:
            self.log.error("promoter: %s", job.result.pop("traceback", job.result["message"]))


def internal_error(exc: BaseException) -> dict[str, Any]:
    return {
        "error": "InternalError",
        "message": f"promoter failed unexpectedly: {type(exc).__name__}: {exc}",
        "hint": "see the Jupyter server log for the traceback",
    }
