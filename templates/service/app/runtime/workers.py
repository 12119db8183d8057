"""Worker processes for ``execution: "process"``: a pebble pool whose workers hold no server socket.

The workers are forked after the setup cells ran, so they start with the notebook's state. A
forked process inherits every file descriptor, the server's listening socket among them: after
SIGTERM the server closes its copy, but the socket stays open in the workers, so new connections
wait in its backlog (and hang) instead of being refused. A worker replaced after a timeout is
forked while requests are being answered and would also hold their connections open. Each worker
closes those sockets first: the listening ones, and the connections accepted on them. Sockets
the notebook's own setup opened (a database client) are neither, and stay.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
from typing import Any


def process_pool(size: int) -> Any:
    """A pebble ``ProcessPool`` of ``size`` forked workers (spawned where fork is unsafe)."""
    import pebble

    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    return pebble.ProcessPool(size, initializer=close_server_sockets, context=context)


def close_server_sockets() -> None:
    """Close the inherited listening sockets and the connections accepted on them."""
    sockets = [s for fd in _descriptors() if (s := _socket(fd)) is not None]
    listening = [s for s in sockets if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)]
    addresses = {_address(s) for s in listening} - {None, ""}  # "": unnamed (a socketpair)
    for sock in sockets:
        if sock in listening or _address(sock) in addresses:
            sock.close()
        else:
            sock.detach()  # not the server's: leave the descriptor open


def _descriptors() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc (macOS): the usual range
        return list(range(3, 256))


def _socket(fd: int) -> socket.socket | None:
    if fd <= 2:
        return None
    try:
        sock = socket.socket(fileno=fd)
    except OSError:  # not a socket, or already closed
        return None
    if sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        sock.detach()
        return None
    return sock


def _address(sock: socket.socket) -> Any:
    """The local port (TCP) or path (Unix): a server listening on 0.0.0.0:8000 accepts its
    connections on 10.1.2.3:8000, so the port alone tells them apart from client sockets."""
    try:
        address = sock.getsockname()
    except OSError:
        return None
    if sock.family == socket.AF_UNIX:
        return address
    return ("tcp", address[1])
