"""Admission: at most ``concurrency`` requests run notebook code at once, a bounded few wait.

A request that finds every slot busy waits in a queue of at most ``queue_length`` requests, and
only if it can expect a slot within ``queue_timeout`` seconds (from how long slots have been
held lately); otherwise it is refused at once (503 with a ``Retry-After`` spread over the time
the queue needs to drain, so refused clients do not all come back together). The requests that
are served wait at most about one request's time, and memory does not grow with the overload.

Wedges: a timed-out thread cannot be stopped, so it keeps its slot until it returns. The service
is *wedged* when every slot is busy, slots have been busy without a break for ``grace`` seconds
(by default the longest route timeout), and no notebook code finished within its timeout
meanwhile: all slots hung, or each request hanging a little past its timeout (a rolling wedge).
It stays wedged until code finishes in time again, or every slot is free. Healthy code finishes
within its timeout, so a busy service is never taken for a wedged one, and one hung thread
among free slots is not a wedge (the other slots serve).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable

from app.runtime.metrics import Metrics

#: Weight of the newest slot-hold time in the running average the queue is judged by.
_SMOOTHING = 0.2


class Overloaded(Exception):
    """No slot can be expected in time: the request is refused (503)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class CodeTimeout(Exception):
    """The notebook code ran past its timeout."""


class Slots:
    """At most ``size`` requests hold a slot at once; at most ``queue`` wait for one."""

    def __init__(
        self,
        size: int,
        wait: float,
        grace: float,
        metrics: Metrics | None = None,
        *,
        queue: int | None = None,
    ) -> None:
        self.size = size
        self.wait = wait
        self.grace = grace
        self.queue = size if queue is None else queue
        self.busy = 0  # slots held, by code running in time or past its timeout
        self.waiting = 0
        self.timed_out_running = 0
        self.hold = 0.0  # running average of the seconds a slot is held
        self._semaphore = asyncio.Semaphore(size)
        self._busy_since: float | None = None  # slots busy without a break since then
        self._finished_in_time = time.monotonic()
        self._wedged = False
        if metrics is not None:
            metrics.watch_slots(self)

    async def acquire(self) -> float:
        """Take a slot (waiting when one can be expected in time); the monotonic time taken.

        Raises :class:`Overloaded` at once when the queue is full or a slot cannot be expected
        within ``wait`` seconds, and after ``wait`` seconds when none came.
        """
        if not self._semaphore.locked():
            await self._semaphore.acquire()  # free slot: no timer
            return self._taken()
        if self.waiting >= self.queue or self.expected_wait(self.waiting + 1) > self.wait:
            raise Overloaded(self.retry_after())
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait):
                await self._semaphore.acquire()
        except TimeoutError:
            raise Overloaded(self.retry_after()) from None
        finally:
            self.waiting -= 1
        return self._taken()

    def expected_wait(self, position: int) -> float:
        """Seconds until the ``position``-th waiting request can expect a slot."""
        return position * self.hold / self.size

    def retry_after(self) -> int:
        """Whole seconds to tell a refused client: the queue's drain time, spread at random."""
        drain = self.expected_wait(self.waiting + self.busy)
        return random.randint(1, max(2, math.ceil(2 * drain)))

    def finish(self, taken: float, timeout: float) -> None:
        """The code that held a slot since ``taken`` finished: the slot is free again."""
        now = time.monotonic()
        held = now - taken
        if held <= timeout:
            self._finished_in_time = now
            self._wedged = False
        self.hold += _SMOOTHING * (min(held, timeout) - self.hold)
        self.busy -= 1
        if self.busy == 0:  # nothing runs, nothing hangs: whatever wedged it has returned
            self._busy_since = None
            self._wedged = False
        self._semaphore.release()

    def stuck(self) -> None:
        """A slot's code timed out and still runs (it finishes later, with :meth:`unstuck`)."""
        self.timed_out_running += 1

    def unstuck(self, finish: Callable[[], None]) -> None:
        """Timed-out code returned: ``finish`` (:meth:`finish`, bound) frees its slot."""
        self.timed_out_running -= 1
        finish()

    def wedged(self) -> bool:
        """Every slot busy, busy for ``grace`` seconds, and none finished in time meanwhile."""
        since = self._busy_since
        if not self._wedged and since is not None and self.busy >= self.size:
            stalled = time.monotonic() - max(since, self._finished_in_time)
            self._wedged = stalled >= self.grace
        return self._wedged

    def _taken(self) -> float:
        now = time.monotonic()
        self.busy += 1
        if self._busy_since is None:
            self._busy_since = now
        return now
