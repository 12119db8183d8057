"""The embedded job store's rules (templates/service/app/jobs/, shipped verbatim), fast.

Imported from the templates as a service ships them; a real SQLite file per test. The
end-to-end behaviour (workers, restarts, Redis) is tests/test_jobs.py.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promoter.building.resources import template_dir

APP = template_dir() / "service" / "app"


@pytest.fixture(scope="module")
def jobs() -> Iterator[Any]:
    """``app.jobs`` imported as it is shipped (``app`` points at the templates)."""
    mine = [name for name in sys.modules if name == "app" or name.startswith("app.")]
    saved = {name: sys.modules.pop(name) for name in mine}
    package = types.ModuleType("app")
    package.__path__ = [str(APP)]
    sys.modules["app"] = package
    module = types.SimpleNamespace(
        store=importlib.import_module("app.jobs.store"),
        models=importlib.import_module("app.jobs.models"),
    )
    yield module
    for name in [n for n in sys.modules if n == "app" or n.startswith("app.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def _add(jobs: Any, store: Any, n: int, route: str = "/a") -> Any:
    job = jobs.models.JobRecord(f"{n:032x}", route, "queued", 1000.0 + n, '{"x": 1}')
    store.add(job)
    return job


def test_a_status_changes_once(jobs: Any, tmp_path: Path) -> None:
    store = jobs.store.SqliteStore(tmp_path / "jobs.sqlite3")
    job = _add(jobs, store, 1)
    assert store.start(job.id, 1001.5)
    assert not store.start(job.id, 1002.0)  # already running
    assert store.finish(job.id, "succeeded", 1003.5, result='{"y": 2}')
    assert not store.finish(job.id, "cancelled", 1004.0)  # a cancel after the end loses
    done = store.get(job.id)
    assert (done.status, done.result, done.seconds) == ("succeeded", '{"y": 2}', 2.0)
    cancelled = _add(jobs, store, 2)
    assert store.finish(cancelled.id, "cancelled", 1005.0)
    assert not store.start(cancelled.id, 1006.0)  # a worker never starts a cancelled job
    assert store.get("f" * 32) is None


def test_pages_are_newest_first_and_filtered(jobs: Any, tmp_path: Path) -> None:
    store = jobs.store.SqliteStore(tmp_path / "jobs.sqlite3")
    ids = [_add(jobs, store, n, "/a" if n % 2 else "/b").id for n in range(1, 8)]
    store.finish(ids[0], "failed", 2000.0, error={"type": "E", "message": "m", "error_id": "1"})
    first, cursor = store.page(None, None, 3, None)
    assert [j.id for j in first] == ids[:-4:-1]
    second, cursor = store.page(None, None, 3, cursor)
    assert [j.id for j in second] == ids[3:0:-1]
    last, cursor = store.page(None, None, 3, cursor)
    assert ([j.id for j in last], cursor) == ([ids[0]], None)
    only_b, _ = store.page("/b", None, 10, None)
    assert {j.route for j in only_b} == {"/b"} and len(only_b) == 3
    failed, _ = store.page(None, "failed", 10, None)
    assert [j.error for j in failed] == [{"type": "E", "message": "m", "error_id": "1"}]
    stats = store.stats()
    assert stats["/a", "queued"][0] == 3 and stats["/b", "queued"][0] == 3
    assert stats["/a", "failed"][0] == 1


def test_recovery_fails_the_running_and_keeps_the_queued(jobs: Any, tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    store = jobs.store.SqliteStore(path)
    running, queued, later = (_add(jobs, store, n) for n in (1, 2, 3))
    store.start(running.id, 1001.0)
    store.close()
    again = jobs.store.SqliteStore(path)  # what a restarted service finds
    assert again.recover(3000.0, "e" * 32) == [queued.id, later.id]  # oldest first
    crashed = again.get(running.id)
    assert crashed.status == "failed"
    assert crashed.error["type"] == "interrupted"
    assert crashed.error["error_id"] == "e" * 32


def test_a_job_answer_is_inlined_as_json(jobs: Any) -> None:
    record = jobs.models.JobRecord("a" * 32, "/a", "succeeded", 0.0, "{}", 1.0, 2.5, '{"n": 1}')
    body = json.loads(jobs.models.job_body(record))
    assert body["result"] == {"n": 1}
    assert body["started_at"] == "1970-01-01T00:00:01.000+00:00"
    queued = jobs.models.JobRecord("b" * 32, "/a", "queued", 0.0, "{}")
    assert json.loads(jobs.models.job_body(queued))["result"] is None
