"""Admission: at most ``concurrency`` requests run notebook code at once."""

from __future__ import annotations

import asyncio
import time

from app.runtime.metrics import Metrics


class Overloaded(Exception):
    """No slot became free within the queue timeout."""


class CodeTimeout(Exception):
    """The notebook code ran past its timeout."""


class Slots:
    """At most ``size`` requests run notebook code at once; timed-out threads keep their slot.

    ``wedged()`` is true once every slot has been held by timed-out code for ``grace`` seconds.
    """

    def __init__(
        self, size: int, wait: float, grace: float, metrics: Metrics | None = None
    ) -> None:
        self.size = size
        self.wait = wait
        self.grace = grace
        self.metrics = metrics
        self.timed_out_running = 0
        if metrics is not None:
            metrics.timed_out_running.set_function(lambda: self.timed_out_running)
        self._semaphore = asyncio.Semaphore(size)
        self._all_stuck_since: float | None = None

    async def acquire(self) -> None:
        """Take a slot, waiting at most ``wait`` seconds (then :class:`Overloaded`)."""
        if not self._semaphore.locked():
            await self._semaphore.acquire()  # free slot: no timer
            return
        try:
            async with asyncio.timeout(self.wait):
                await self._semaphore.acquire()
        except TimeoutError:
            raise Overloaded from None

    def release(self) -> None:
        self._semaphore.release()

    def stuck(self) -> None:
        """A slot's code timed out and still runs."""
        self.timed_out_running += 1
        if self.timed_out_running >= self.size and self._all_stuck_since is None:
            self._all_stuck_since = time.monotonic()

    def unstuck(self) -> None:
        """Timed-out code finished: its slot is free again."""
        self.timed_out_running -= 1
        self._all_stuck_since = None
        self.release()

    def wedged(self) -> bool:
        since = self._all_stuck_since
        return since is not None and time.monotonic() - since >= self.grace
