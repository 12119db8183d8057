"""``python -m app.worker``: a Celery worker that runs this service's jobs.

Used with ``SERVICE_JOBS_URL=redis://...`` (the embedded default runs jobs inside the service
and needs no worker). The worker imports the service's routes from ``app.main``, runs the
notebooks' setup cells once, then starts Celery's worker: its child processes are forked from
this one, so each starts with what the setup cells loaded. ``SERVICE_JOB_WORKERS`` jobs run at
once; extra arguments go to ``celery worker`` (e.g. ``--loglevel DEBUG``).
"""

from __future__ import annotations

import asyncio
import inspect
import sys


def main(argv: list[str]) -> int:
    """Run the worker until it is stopped (SIGTERM: a warm shutdown, as Celery does).

    ``--ping``: exit 0 if this host's worker answers Celery's ping through the broker (the
    Kubernetes probes), else 1.
    """
    from app.main import service

    jobs = service.jobs
    if not jobs.settings.distributed:
        print(
            "python -m app.worker needs SERVICE_JOBS_URL=redis://HOST:PORT/DB: with the default "
            "SQLite store the service runs its jobs itself",
            file=sys.stderr,
        )
        return 2
    engine = jobs.engine
    if argv == ["--ping"]:
        return _ping(engine.celery)
    from app.jobs.distributed import register_task

    register_task(engine.celery, engine.store, jobs.routes)
    for setup in service.setups:
        if inspect.iscoroutinefunction(setup):
            asyncio.run(setup())
        else:
            setup()
    options = ["--concurrency", str(jobs.settings.job_workers), "--queues", jobs.queue]
    engine.celery.worker_main(["worker", "--pool", "prefork", *options, *argv])
    return 0


def _ping(celery: object) -> int:
    import socket

    node = f"celery@{socket.gethostname()}"
    answers = celery.control.ping(destination=[node], timeout=10)  # type: ignore[attr-defined]
    return 0 if answers else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
