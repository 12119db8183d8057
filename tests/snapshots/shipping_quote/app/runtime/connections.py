"""Connections: a deadline for each request head, and a cap on open connections.

uvicorn's h11 protocol waits for ever for a request head that trickles in a byte at a time (its
keep-alive timer starts only after a response and restarts at every byte): slow clients
("slowloris") hold their sockets until the process runs out of file descriptors, and even
``/health`` goes dark. :class:`GuardedH11Protocol`, which the Dockerfile's ``uvicorn --http
app.runtime.connections:GuardedH11Protocol`` runs, gives every connection ``header_timeout``
seconds to send a complete request head (from its start, and again after each response on a
kept-alive connection) however the bytes trickle, then closes it. At ``max_connections`` open
connections (never more than the open-file limit less 32), a new connection closes the one
that has waited longest for its head (never one whose request runs), so a real client still
gets in.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from app.runtime.settings import Settings

#: Open files a worker process keeps for itself (logs, the event loop, pipes, modules).
_RESERVED_FILES = 32


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to fit the process's open-file limit."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - _RESERVED_FILES))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head and a connection cap."""

    settings: Settings | None = None
    #: Connections waiting for a request head, the longest-waiting first.
    waiting: dict[GuardedH11Protocol, None] = {}  # noqa: RUF012 (one per worker process)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GuardedH11Protocol.settings is None:
            GuardedH11Protocol.settings = Settings()
        self.head_timeout = GuardedH11Protocol.settings.header_timeout
        self.cap = connection_cap(GuardedH11Protocol.settings.max_connections)
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait()
        if len(self.connections) > self.cap:
            next(iter(self.waiting))._close()  # this one, if no other waits for its head

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._idle():
            self._stop_waiting()  # the head is in: the request's own limits apply

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._idle() and not self.transport.is_closing():
            self._wait()  # kept alive: the next head has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _wait(self) -> None:
        self._stop_waiting()
        self.waiting[self] = None
        self.deadline = self.loop.call_later(self.head_timeout, self._close)

    def _stop_waiting(self) -> None:
        self.waiting.pop(self, None)
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _close(self) -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()
