"""Run one task per item in worker processes, relaying their progress to this process.

Processes, not threads: papermill changes the process-wide working folder while a notebook
runs, and each kernel inherits it, so two notebooks from different folders cannot run in one
process at once. Workers fork from a server that has imported papermill once (the forkserver
preload), so each task starts warm. The standard library's ``ProcessPoolExecutor`` does the
pooling; this module only adds the progress relay and turns a dead worker into a result.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

__all__ = ["run_in_processes"]

T = TypeVar("T")
R = TypeVar("R")

#: The (notebook, cells done, cells in all) progress of a worker's task.
Relay = Callable[[str, int, int], None]
_PRELOAD = ["promoter.frontends.check", "papermill", "nbclient", "nbconvert"]

_worker_events: Any = None


def run_in_processes(
    task: Callable[[T, Relay], R],
    items: list[T],
    *,
    jobs: int,
    on_progress: Relay | None = None,
    on_result: Callable[[T, R], None] | None = None,
    on_crash: Callable[[T, BaseException], R],
) -> dict[T, R]:
    """Call ``task(item, progress)`` for every item, ``jobs`` at a time, in worker processes.

    Args:
        task: A module-level function (it is pickled to the workers).
        items: The work, one task each.
        jobs: Worker processes at most.
        on_progress: Receives every worker's progress, in this process.
        on_result: Called with each item and its result as soon as it is known.
        on_crash: Makes the result of an item whose worker died (killed, out of memory).

    Returns:
        Each item's result.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    events: Any = context.Queue()
    relay_thread = threading.Thread(
        target=_relay, args=(events, on_progress), name="promoter-progress", daemon=True
    )
    relay_thread.start()
    results: dict[T, R] = {}
    try:
        with ProcessPoolExecutor(
            min(jobs, len(items)), mp_context=context, initializer=_init_worker, initargs=(events,)
        ) as pool:
            futures = {pool.submit(_call, task, item): item for item in items}
            for future in as_completed(futures):
                item = futures[future]
                results[item] = _result(future, item, on_crash)
                if on_result is not None:
                    on_result(item, results[item])
    finally:
        events.put(None)
        relay_thread.join(timeout=5)
    return results


def _result(future: Future[R], item: T, on_crash: Callable[[T, BaseException], R]) -> R:
    try:
        return future.result()
    except Exception as exc:  # the worker died (killed, out of memory)
        return on_crash(item, exc)


def _relay(events: Any, on_progress: Relay | None) -> None:
    while (event := events.get()) is not None:
        if on_progress is not None:
            on_progress(*event)


def _init_worker(events: Any) -> None:
    global _worker_events
    _worker_events = events


def _call(task: Callable[[T, Relay], R], item: T) -> R:
    events = _worker_events

    def progress(name: str, done: int, total: int) -> None:
        if events is not None:
            events.put((name, done, total))

    return task(item, progress)
