"""Where jobs are kept: the :class:`Store` interface, and the embedded SQLite store.

Every change of status is one conditional update (``queued -> running``, ``queued|running ->
succeeded|failed|cancelled``), so a cancel racing a finish cannot both win: whichever comes
second sees the job finished. The Redis store (``app.jobs.distributed``) keeps the same rules.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from app.jobs.models import JobRecord

__all__ = ["INTERRUPTED", "SqliteStore", "Stats", "Store"]

#: (route, status) -> (jobs, seconds run by the finished ones)
Stats = dict[tuple[str, str], tuple[int, float]]

#: The error of a job that was running when its worker stopped (crash, kill, restart).
INTERRUPTED = (
    "interrupted",
    "the service stopped while the job ran (a restart or a crash); submit it again",
)


class Store(Protocol):
    """What the job API needs from a store (SQLite embedded, Redis distributed)."""

    def add(self, job: JobRecord) -> None:
        """Keep a new queued job."""

    def get(self, job_id: str) -> JobRecord | None:
        """The job, or None for an unknown id."""

    def page(
        self, route: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        """Jobs newest first, after ``cursor``, and the cursor of the next page (if any)."""

    def start(self, job_id: str, at: float) -> bool:
        """queued -> running; False when the job is no longer queued (cancelled)."""

    def finish(
        self,
        job_id: str,
        status: str,
        at: float,
        *,
        result: str | None = None,
        error: dict[str, str] | None = None,
    ) -> bool:
        """queued|running -> ``status``; False when the job had already finished."""

    def stats(self) -> Stats:
        """Jobs by route and status, with the seconds the finished ones ran."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    route TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    request TEXT NOT NULL,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
"""
_COLUMNS = "id, route, status, submitted_at, request, started_at, finished_at, result, error"


class SqliteStore:
    """Jobs in one SQLite file, for the service process and its job workers.

    WAL mode lets the workers mark jobs running while the service reads; every connection
    waits up to 30 s for a lock instead of failing. One connection per process, used under a
    lock (the event loop's threads and pebble's callback thread share it); a forked worker
    opens its own (:meth:`reopen`): a connection must not cross a fork.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = self._connect()
        with self._db:
            self._db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; never corrupt
        return db

    def reopen(self) -> None:
        """A connection of this process's own (called in a forked worker)."""
        self._lock = threading.Lock()
        self._db = self._connect()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, job: JobRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, route, status, submitted_at, request) "
                "VALUES (?, ?, ?, ?, ?)",
                (job.id, job.route, job.status, job.submitted_at, job.request),
            )

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return None if row is None else _record(row)

    def page(
        self, route: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        where, args = ["seq < ?"], [int(cursor) if cursor else 2**62]
        if route is not None:
            where.append("route = ?")
            args.append(route)  # type: ignore[arg-type]
        if status is not None:
            where.append("status = ?")
            args.append(status)  # type: ignore[arg-type]
        query = (
            f"SELECT {_COLUMNS}, seq FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY seq DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(query, (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [_record(row[:-1]) for row in rows], str(rows[-1][-1]) if more else None

    def start(self, job_id: str, at: float) -> bool:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET status = 'running', started_at = ? "
                "WHERE id = ? AND status = 'queued'",
                (at, job_id),
            ).rowcount
        return changed == 1

    def finish(
        self,
        job_id: str,
        status: str,
        at: float,
        *,
        result: str | None = None,
        error: dict[str, str] | None = None,
    ) -> bool:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, result = ?, error = ? "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (status, at, result, None if error is None else json.dumps(error), job_id),
            ).rowcount
        return changed == 1

    def stats(self) -> Stats:
        with self._lock:
            rows = self._db.execute(
                "SELECT route, status, count(*), total(finished_at - started_at) "
                "FROM jobs GROUP BY route, status"
            ).fetchall()
        return {(route, status): (count, seconds) for route, status, count, seconds in rows}

    def recover(self, at: float, error_id: str) -> list[str]:
        """After a restart: running jobs failed (their worker died); the queued, oldest first."""
        kind, message = INTERRUPTED
        error = json.dumps({"type": kind, "message": message, "error_id": error_id})
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?, error = ? "
                "WHERE status = 'running'",
                (at, error),
            )
            rows = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq").fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: tuple[object, ...]) -> JobRecord:
    job_id, route, status, submitted, request, started, finished, result, error = row
    return JobRecord(
        id=str(job_id),
        route=str(route),
        status=str(status),
        submitted_at=float(submitted),  # type: ignore[arg-type]
        request=str(request),
        started_at=None if started is None else float(started),  # type: ignore[arg-type]
        finished_at=None if finished is None else float(finished),  # type: ignore[arg-type]
        result=None if result is None else str(result),
        error=None if error is None else json.loads(str(error)),
    )
