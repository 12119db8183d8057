"""The generated service's runtime (templates/service/app/runtime/, shipped verbatim).

Fast tests import the runtime package from the templates; the slow ones convert a notebook with
the real CLI and call the service under uvicorn over real HTTP: hung code and overload, process
mode, logs, metrics, request ids, API keys, /version, and /docs in headless Chromium with no
network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import functools
import importlib
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promoter.building.resources import template_dir
from tests.helpers import free_port, run_cli, wait_ready, write_notebook

APP = template_dir() / "service" / "app"


@pytest.fixture(scope="module")
def runtime() -> Iterator[types.ModuleType]:
    """The app/runtime package imported as it is shipped, beside app/jsonable."""
    mine = [name for name in sys.modules if name == "app" or name.startswith("app.")]
    saved = {name: sys.modules.pop(name) for name in mine}
    package = types.ModuleType("app")
    package.__path__ = [str(APP)]
    sys.modules["app"] = package
    yield importlib.import_module("app.runtime")
    for name in [n for n in sys.modules if n == "app" or n.startswith("app.")]:
        del sys.modules[name]
    sys.modules.update(saved)


# ---------------------------------------------------------------------------------------------
# Fast: the pieces


def test_settings_from_environment_and_dotenv(
    runtime: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SERVICE_QUEUE_TIMEOUT=2.5\nSERVICE_LOG_LEVEL=debug\n")
    monkeypatch.setenv("SERVICE_API_KEYS", "k1, k2")
    monkeypatch.setenv("SERVICE_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    monkeypatch.setenv("SERVICE_TIMEOUTS", '{"/slow": 5}')
    monkeypatch.setenv("SERVICE_TIMEOUT", "7")
    settings = runtime.Settings()
    assert settings.queue_timeout == 2.5
    assert settings.log_level == "DEBUG"
    assert [key.get_secret_value() for key in settings.api_keys] == ["k1", "k2"]
    assert "k1" not in repr(settings)  # keys are secrets: never printed
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.timeout_for("/slow", 30.0) == 5
    assert settings.timeout_for("/other", 30.0) == 7
    monkeypatch.delenv("SERVICE_TIMEOUT")
    assert runtime.Settings().timeout_for("/other", 30.0) == 30.0


def test_settings_refuse_nonsense(
    runtime: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    for name, value in [("CONCURRENCY", "0"), ("LOG_FORMAT", "xml"), ("TIMEOUT", "-1")]:
        monkeypatch.setenv(f"SERVICE_{name}", value)
        with pytest.raises(ValidationError):
            runtime.Settings()
        monkeypatch.delenv(f"SERVICE_{name}")


def test_misspelt_settings_are_named_with_the_setting_meant(runtime: types.ModuleType) -> None:
    environ = {
        "SERVICE_TIMEOUTS": '{"/a": 1}',
        "SERVICE_TIMOUT": "5",
        "SERVICE_QUEUE_LENGHT": "3",
        "SERVICE_ZZZ": "1",
        "PATH": "/bin",
    }
    assert runtime.settings.unknown_settings(environ) == [
        "SERVICE_QUEUE_LENGHT is not a setting of this service and changes nothing; "
        "did you mean SERVICE_QUEUE_LENGTH?",
        "SERVICE_TIMOUT is not a setting of this service and changes nothing; "
        "did you mean SERVICE_TIMEOUT?",
        "SERVICE_ZZZ is not a setting of this service and changes nothing",
    ]


def test_json_formatter_carries_request_id_extras_and_traceback(
    runtime: types.ModuleType,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(runtime.JsonFormatter())
    log = logging.getLogger("test_runtime.formatter")
    log.addHandler(handler)
    log.propagate = False
    token = runtime.logs.current_request.set(runtime.RequestState("rid-1"))
    try:
        log.warning("hello %s", "wörld", extra={"error_id": "e1"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        runtime.logs.current_request.reset(token)
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "hello wörld" and first["level"] == "WARNING"
    assert first["request_id"] == "rid-1" and first["error_id"] == "e1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert "ValueError: boom" in second["traceback"]


def test_json_body_matches_json_and_takes_what_orjson_refuses(runtime: types.ModuleType) -> None:
    value = {"naïve": [1, 2.5, None, True], "big": 2**70, "nan": float("nan"), "e": 1e16}
    body = runtime.json_body(value)
    assert json.loads(body) == {**value, "nan": None}
    small = {"text": "東京", "x": [0.1, -3]}
    assert json.loads(runtime.json_body(small)) == small


class _Colour(str, enum.Enum):  # noqa: UP042 (the mixin, whose str() is "_Colour.RED")
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


class _Pair(enum.Enum):
    P = (1, 2.5)


class _Text(str):
    pass


@dataclasses.dataclass
class _Point:
    x: float
    y: int


# Values orjson could write its own way; drawn by index (hypothesis reports enums badly).
_SPECIAL: list[Any] = [
    _Colour.RED,
    _Level.HIGH,
    _Pair.P,
    uuid.UUID(int=5),
    _Text("t"),
    _Point(1.5, 2),
    np.float64(0.1),
    np.int32(7),
    np.bool_(True),
    datetime.date(2020, 1, 2),
    datetime.datetime(2020, 1, 2, 3, 4, 5, 6),
    "lone \ud800 surrogate",
    1e16,
]
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(range(len(_SPECIAL))).map(_SPECIAL.__getitem__),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


@given(_VALUES)
@settings(max_examples=300, deadline=None, derandomize=True)
@pytest.mark.slow
def test_json_body_writes_the_bytes_jsonable_writes(runtime: types.ModuleType, value: Any) -> None:
    """json_body's orjson fast path for plain answers changes no byte of any answer."""
    assert runtime.json_body(value) == runtime.runner.dumps(value)


def test_slots_shed_at_once_when_the_queue_is_full(runtime: types.ModuleType) -> None:
    """One slot, one place in the queue: the third request is refused without waiting."""

    async def scenario() -> None:
        slots = runtime.Slots(1, wait=3600, grace=3600, queue=1)
        taken = await slots.acquire()
        waiter = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        assert (slots.busy, slots.waiting) == (1, 1)
        refused = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        assert refused.done()  # at once, though the wait budget is an hour
        assert isinstance(refused.exception(), runtime.Overloaded)
        assert refused.exception().retry_after >= 1
        slots.finish(taken, timeout=3600)
        slots.finish(await waiter, timeout=3600)  # the queued one got the freed slot
        assert (slots.busy, slots.waiting) == (0, 0)

    asyncio.run(scenario())


def test_slots_refuse_at_once_when_no_slot_can_come_in_time(runtime: types.ModuleType) -> None:
    """Slots held ~5 s lately and a 1 s wait budget: waiting could not help, so no wait."""

    async def scenario() -> None:
        slots = runtime.Slots(2, wait=1.0, grace=3600, queue=10)
        first, second = await slots.acquire(), await slots.acquire()
        slots.hold = 5.0
        refused = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        assert isinstance(refused.exception(), runtime.Overloaded)
        spread = {slots.retry_after() for _ in range(200)}
        assert min(spread) >= 1 and max(spread) <= 10 and len(spread) > 1  # not all at once
        slots.finish(first, timeout=3600)
        slots.finish(second, timeout=3600)

    asyncio.run(scenario())


def test_slots_wedge_when_every_slot_is_busy_and_nothing_finishes_in_time(
    runtime: types.ModuleType,
) -> None:
    """Hung slots, and a rolling wedge (each request finishing late), are wedges; a busy
    service whose code finishes in time, and one hung slot among free ones, are not."""

    async def scenario() -> None:
        slots = runtime.Slots(2, wait=0.05, grace=60)
        hung = await slots.acquire()
        slots.stuck()
        slots._busy_since -= 3600  # an hour with this slot hung...
        slots._finished_in_time -= 3600
        assert not slots.wedged()  # ...but the other slot is free and serves
        other = await slots.acquire()
        assert slots.wedged() and slots.timed_out_running == 1
        slots.finish(other - 3600, timeout=1)  # a rolling wedge: it finished, but late
        assert slots.wedged()
        other = await slots.acquire()
        assert slots.wedged()  # stays wedged until code finishes in time
        slots.finish(other, timeout=60)  # finished in time
        assert not slots.wedged()
        busy = await slots.acquire()
        assert not slots.wedged()  # every slot busy, but code finished in time just now
        slots.unstuck(functools.partial(slots.finish, hung, 1))
        slots.finish(busy, timeout=60)
        assert (slots.busy, slots.timed_out_running, slots.wedged()) == (0, 0, False)

    asyncio.run(scenario())


def test_capacity_follows_the_cgroup_quota_and_the_affinity(
    runtime: types.ModuleType, tmp_path: Path
) -> None:
    capacity = runtime.capacity
    cgroups = tmp_path / "cgroup"
    pod = cgroups / "kubepods" / "pod1"
    pod.mkdir(parents=True)
    own = tmp_path / "self-cgroup"
    own.write_text("0::/kubepods/pod1\n")
    (cgroups / "cpu.max").write_text("max 100000\n")
    (cgroups / "kubepods" / "cpu.max").write_text("400000 100000\n")
    (pod / "cpu.max").write_text("150000 100000\n")  # limits: cpu: 1500m
    cpus, source = capacity.cpu_limit(cgroups, own)
    assert cpus == 1.5 and "cgroup CPU quota" in source
    (pod / "cpu.max").write_text("max 100000\n")
    assert capacity.cpu_limit(cgroups, own)[0] == min(4.0, len(os.sched_getaffinity(0)))
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "c1").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_period_us").write_text("100000\n")
    own.write_text("5:cpu,cpuacct:/docker/c1\n4:memory:/docker/c1\n")
    assert capacity.cpu_limit(v1, own)[0] == 0.5
    own.write_text("")  # no cgroup at all: the affinity
    assert capacity.cpu_limit(tmp_path / "none", own)[0] == len(os.sched_getaffinity(0))


def test_worker_processes_close_the_server_sockets_they_inherit(tmp_path: Path) -> None:
    """A forked worker closes the listening socket and its accepted connections, and keeps
    the notebook's own sockets (a client connection, a socketpair)."""
    script = (
        "import os, socket, sys, types\n"
        f"app = types.ModuleType('app'); app.__path__ = [{str(APP)!r}]; sys.modules['app'] = app\n"
        "from app.runtime.workers import close_server_sockets\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "client = socket.create_connection(server.getsockname())\n"
        "accepted, _ = server.accept()\n"
        "other = socket.create_server(('127.0.0.1', 0)); other.close()\n"
        "pair = socket.socketpair()\n"
        "fds = {'server': server.fileno(), 'accepted': accepted.fileno(),\n"
        "       'client': client.fileno(), 'pair': pair[0].fileno()}\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    close_server_sockets()\n"
        "    gone = []\n"
        "    for name, fd in fds.items():\n"
        "        try:\n"
        "            os.fstat(fd)\n"
        "        except OSError:\n"
        "            gone.append(name)\n"
        "    print(sorted(gone), flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['accepted', 'server']"


def test_api_key_check_accepts_each_key_in_constant_time(runtime: types.ModuleType) -> None:
    settings = runtime.Settings(api_keys=["first-key", "second-key", "x"])
    plumbing = runtime.Plumbing(lambda *a: None, settings=settings, metrics=runtime.Metrics())
    scope = {"path": "/score"}
    for key in (b"first-key", b"second-key", b"x"):
        assert plumbing._allowed(key, scope)
    for key in (None, b"", b"first-ke", b"second-key ", b"X"):
        assert not plumbing._allowed(key, scope)
    source = (APP / "runtime" / "plumbing.py").read_text()
    assert "secrets.compare_digest(key, candidate)" in source


def test_access_record_is_a_log_record_every_formatter_takes(runtime: types.ModuleType) -> None:
    """The per-request record skips LogRecord's look-ups, yet has every attribute it has."""
    state = runtime.RequestState("rid-7", error_id="e-9")
    record = runtime.AccessRecord("POST", "/score", "/score", 500, 0.0123, state)
    assert isinstance(record, logging.LogRecord)
    assert set(logging.makeLogRecord({}).__dict__) <= set(record.__dict__)
    assert record.process == os.getpid() and record.levelno == logging.INFO
    text = logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(process)d %(threadName)s %(filename)s "
        "[%(request_id)s] %(message)s"
    ).format(record)
    assert "INFO app.request" in text and "[rid-7] POST /score 500 12.3 ms" in text
    line = json.loads(runtime.JsonFormatter().format(record))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("time"))
    assert line == {
        "level": "INFO",
        "logger": "app.request",
        "message": "POST /score 500 12.3 ms",
        "request_id": "rid-7",
        "method": "POST",
        "route": "/score",
        "path": "/score",
        "status": 500,
        "latency_ms": 12.3,
        "error_id": "e-9",
    }
    assert "error_id" not in json.loads(
        runtime.JsonFormatter().format(
            runtime.AccessRecord("GET", "/a", "/a", 200, 0.001, runtime.RequestState("r"))
        )
    )


def _messages(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["message"] for line in stream.getvalue().splitlines()]


def test_batched_handler_keeps_every_line_in_order(runtime: types.ModuleType) -> None:
    """INFO lines logged on the loop wait and go out together; a warning, a line from another
    thread, and the timer write them, in the order they were logged."""
    stream = io.StringIO()
    handler = runtime.BatchedStreamHandler(stream, delay=0.05)
    handler.setFormatter(runtime.JsonFormatter())
    log = logging.getLogger("app.request")  # the access record's own logger
    log.addHandler(handler)
    saved = log.propagate, log.level
    log.propagate = False
    log.setLevel(logging.INFO)
    state = runtime.RequestState("rid-1")

    async def scenario() -> None:
        log.info("first")
        log.handle(runtime.AccessRecord("POST", "/a", "/a", 200, 0.001, state))
        assert stream.getvalue() == ""  # waiting to be written together
        log.warning("a warning")  # at once, after what waited
        assert _messages(stream) == ["first", "POST /a 200 1.0 ms", "a warning"]
        log.info("third")
        await asyncio.to_thread(log.info, "from a thread")  # off the loop: at once
        assert _messages(stream)[3:] == ["third", "from a thread"]
        log.info("fourth")
        for _ in range(200):  # the timer writes it
            if len(_messages(stream)) == 6:
                break
            await asyncio.sleep(0.02)
        assert _messages(stream)[5:] == ["fourth"]
        log.info("at shutdown")

    try:
        asyncio.run(scenario())
        assert _messages(stream)[-1] != "at shutdown"  # waits for the timer or an exit...
        handler.flush()  # ...which logging.shutdown() (atexit) and the lifespan's end call
        assert _messages(stream)[-1] == "at shutdown"
        unbatched = runtime.BatchedStreamHandler(io.StringIO(), delay=0)
        unbatched.setFormatter(runtime.JsonFormatter())

        async def at_once() -> None:
            unbatched.handle(runtime.AccessRecord("GET", "/b", "/b", 200, 0.002, state))
            assert _messages(unbatched.stream) == ["GET /b 200 2.0 ms"]

        asyncio.run(at_once())
    finally:
        log.removeHandler(handler)
        log.propagate, log.level = saved


def test_request_lines_are_made_in_batches_in_order(runtime: types.ModuleType) -> None:
    """Plumbing queues each request's line; the logging module gets it on the loop within the
    delay, before any later line, and a delay of 0 logs it at once."""
    stream = io.StringIO()
    handler = runtime.BatchedStreamHandler(stream, delay=0.5)
    handler.setFormatter(runtime.JsonFormatter())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def request(plumbing: Any, request_id: str) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/a",
            "headers": [(b"x-request-id", request_id.encode())],
        }
        await plumbing(scope, receive, send)

    def lines() -> list[tuple[str, str | None]]:
        rows = [json.loads(line) for line in stream.getvalue().splitlines()]
        # The latency varies with the machine's load: "GET /a 200 0.1 ms" reads "GET /a 200".
        return [
            (re.sub(r" [0-9.]+ ms$", "", row["message"]), row.get("request_id")) for row in rows
        ]

    async def scenario() -> None:
        settings = runtime.Settings(log_flush_seconds=0.5)
        plumbing = runtime.Plumbing(app, settings=settings, metrics=runtime.Metrics())
        await request(plumbing, "r-1")
        await request(plumbing, "r-2")
        assert lines() == []  # queued: made later, together
        logging.getLogger("app").warning("after both")
        assert lines() == [
            ("GET /a 200", "r-1"),
            ("GET /a 200", "r-2"),
            ("after both", None),
        ]
        await request(plumbing, "r-3")
        for _ in range(200):  # the timer makes and writes it
            if len(lines()) == 4:
                break
            await asyncio.sleep(0.02)
        assert lines()[3] == ("GET /a 200", "r-3")
        at_once = runtime.Settings(log_flush_seconds=0)
        handler.delay = 0  # as configure_logging sets it from the same setting
        plumbing = runtime.Plumbing(app, settings=at_once, metrics=runtime.Metrics())
        await request(plumbing, "r-4")
        assert lines()[4] == ("GET /a 200", "r-4")
        handler.delay = 0.5
        await request(runtime.Plumbing(app, settings=settings, metrics=runtime.Metrics()), "r-5")

    try:
        asyncio.run(scenario())
        handler.flush()  # as logging.shutdown() at exit and the app's end do
        assert lines()[5] == ("GET /a 200", "r-5")
    finally:
        root.handlers[:], root.level = saved


def test_the_w3c_trace_id_reaches_the_log_lines(runtime: types.ModuleType) -> None:
    """A valid ``traceparent`` puts its trace id on the request's line and the code's lines;
    a malformed or all-zero one is ignored."""
    stream = io.StringIO()
    handler = runtime.BatchedStreamHandler(stream, delay=0)
    handler.setFormatter(runtime.JsonFormatter())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        logging.getLogger("notebook").info("inside")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def request(plumbing: Any, traceparent: bytes) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        headers = [(b"traceparent", traceparent)]
        scope = {"type": "http", "method": "GET", "path": "/a", "headers": headers}
        await plumbing(scope, receive, send)

    async def scenario() -> None:
        settings = runtime.Settings(log_flush_seconds=0)
        plumbing = runtime.Plumbing(app, settings=settings, metrics=runtime.Metrics())
        await request(plumbing, f"00-{trace}-00f067aa0ba902b7-01".encode())
        await request(plumbing, b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")
        await request(plumbing, b"not a traceparent")

    try:
        asyncio.run(scenario())
    finally:
        root.handlers[:], root.level = saved
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line.get("trace_id") for line in lines] == [trace, trace, None, None, None, None]
    assert [line["logger"] for line in lines[:2]] == ["notebook", "app.request"]


def test_request_counts_expose_what_prometheus_client_types_would(
    runtime: types.ModuleType,
) -> None:
    """The plain-number collector gives the same series as Counter and Histogram; a probe's
    503 (starting, wedged) is not a server error."""
    import prometheus_client as prom

    counts = runtime.RequestCounts(runtime.metrics.BUCKETS)
    ours_registry = prom.CollectorRegistry()
    ours_registry.register(counts)
    registry = prom.CollectorRegistry()
    requests = prom.Counter(
        "http_requests",
        "Requests answered, by route and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = prom.Histogram(
        "http_request_duration_seconds",
        "Time from request to response, by route and status.",
        ["method", "route", "status"],
        registry=registry,
        buckets=runtime.metrics.BUCKETS,
    )
    errors = prom.Counter(
        "http_server_errors",
        "Responses with a 5xx status, by route (a probe's 503 is its answer, not an error).",
        ["route"],
        registry=registry,
    )
    seen = [
        ("POST", "/a", 200, 0.003),
        ("POST", "/a", 200, 0.2),
        ("POST", "/a", 200, 0.005),  # on a bucket's bound: counted in it
        ("POST", "/a", 500, 12.0),
        ("POST", "/a", 504, 0.75),
        ("POST", "/a", 503, 45.0),  # waited, then ran to a long timeout: past 10 s buckets
        ("GET", "/health", 200, 0.0001),
        ("GET", "/ready", 503, 0.0001),  # starting: not a server error
        ("POST", "<unmatched>", 401, 0.0002),
    ]
    for method, route, status, seconds in seen:
        counts.observe(method, route, status, seconds)
        requests.labels(method, route, str(status)).inc()
        latency.labels(method, route, str(status)).observe(seconds)
        if status >= 500 and route != "/ready":
            errors.labels(route).inc()

    def series(registry: prom.CollectorRegistry) -> list[str]:
        lines = prom.generate_latest(registry).decode().splitlines()
        return sorted(line for line in lines if "_created" not in line)

    theirs = series(registry)
    assert series(ours_registry) == theirs
    assert 'http_server_errors_total{route="/a"} 3.0' in theirs
    assert not any("/ready" in line for line in theirs if line.startswith("http_server_errors"))
    bucket = 'http_request_duration_seconds_bucket{le="60.0",method="POST",route="/a",status="503"}'
    assert f"{bucket} 1.0" in theirs
    created = prom.generate_latest(ours_registry).decode().splitlines()
    assert any(line.startswith("http_requests_created{") for line in created)
    service_metrics = runtime.Metrics()  # the service's registry has the collector
    service_metrics.observe("POST", "/a", 200, 0.003)
    exposed = service_metrics.exposition()[0].decode()
    assert 'http_requests_total{method="POST",route="/a",status="200"} 1.0' in exposed


# ---------------------------------------------------------------------------------------------
# Slow: a real service under uvicorn

HANDLER = """\
if mode == "raise":
    raise ValueError("the notebook refuses mode=raise")
if pidfile:
    with open(pidfile, "w") as handle:
        handle.write(str(os.getpid()))
logging.getLogger("notebook").warning("handling mode %s", mode)
time.sleep(delay)
"""


def _notebook(folder: Path, name: str, execution: str) -> Path:
    return write_notebook(
        folder / f"{name}.ipynb",
        ("markdown", "# Hung\n\nSleeps on request.", []),
        ("code", "import logging\nimport os\nimport time", ["setup"]),
        (
            "code",
            'mode = "ok"  # ok, raise or pid\ndelay = 0.0  # Seconds\npidfile = ""  # Path',
            ["parameters"],
        ),
        ("code", HANDLER, []),
        ("code", '{"mode": mode, "pid": os.getpid() if mode == "pid" else 0}', ["response"]),
        metadata={"timeout": 30, "execution": execution},
    )


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same notebook converted twice: thread execution and process execution."""
    folder = tmp_path_factory.mktemp("runtime")
    out = {}
    for name, execution in [("hung", "thread"), ("hung_process", "process")]:
        service = folder / name
        result = run_cli("convert", _notebook(folder, name, execution), "-o", service)
        assert result.returncode == 0, result.output
        out[name] = service
    return out


@contextmanager
def serve(folder: Path, log: Path, **settings: object) -> Iterator[str]:
    """``uvicorn app.main:app`` with SERVICE_* settings; its output goes to ``log``."""
    port = free_port()
    env = {**os.environ, **{f"SERVICE_{k.upper()}": str(v) for k, v in settings.items()}}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
            cwd=folder,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _post_many(url: str, route: str, body: dict[str, Any], count: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(
            pool.map(lambda _: httpx.post(url + route, json=body, timeout=60), range(count))
        )


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        metric, _, value = line.rpartition(" ")
        if metric == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return 0.0


def _until(check: Any, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)


def _log_lines(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.slow
def test_hung_code_leaves_room_for_other_requests(
    services: dict[str, Path], tmp_path: Path
) -> None:
    """8 requests hang past the timeout; with 10 slots the next request still gets 200."""
    log = tmp_path / "server.log"
    with serve(services["hung"], log, concurrency=10, timeout=0.5, wedged_grace=0.5) as url:
        hung = _post_many(url, "/hung", {"delay": 8.0}, 8)
        assert [r.status_code for r in hung] == [504] * 8  # they ran, past their timeout
        assert all(len(r.json()["error_id"]) == 32 for r in hung)
        for _ in range(3):
            assert httpx.post(url + "/hung", json={}).status_code == 200
        assert _metric(url, "notebook_timed_out_running") == 8
        assert httpx.get(url + "/health").status_code == 200  # two slots still do real work
        _until(lambda: _metric(url, "notebook_timed_out_running") == 0)
        assert _metric(url, "notebook_timeouts_total", route="/hung") == 8


@pytest.mark.slow
def test_wedged_worker_fails_health_and_recovers(services: dict[str, Path], tmp_path: Path) -> None:
    """4 slots, 8 hanging requests: 4 run and time out (504), 4 never start (503, not 504)."""
    log = tmp_path / "server.log"
    settings = {"concurrency": 4, "timeout": 0.5, "queue_timeout": 0.3, "wedged_grace": 0.5}
    with serve(services["hung"], log, **settings) as url:
        hung = _post_many(url, "/hung", {"delay": 8.0}, 8)
        assert sorted(r.status_code for r in hung) == [503] * 4 + [504] * 4
        assert all(r.headers["retry-after"] for r in hung if r.status_code == 503)
        normal = httpx.post(url + "/hung", json={})
        assert normal.status_code == 503, normal.text  # every slot is truly held
        assert int(normal.headers["retry-after"]) >= 1
        _until(lambda: httpx.get(url + "/health").status_code == 503)
        assert httpx.get(url + "/health").json()["status"] == "wedged"
        ready = httpx.get(url + "/ready")  # no new traffic while wedged
        assert ready.status_code == 503 and ready.json()["status"] == "wedged"
        _until(lambda: httpx.get(url + "/health").status_code == 200)  # the threads finished
        assert httpx.get(url + "/ready").status_code == 200
        assert httpx.post(url + "/hung", json={}).status_code == 200
        assert _metric(url, "notebook_overload_rejections_total", route="/hung") == 5


@pytest.mark.slow
def test_overload_is_shed_at_once_with_a_bounded_queue(
    services: dict[str, Path], tmp_path: Path
) -> None:
    """2 slots and 1 place in the queue: 2 requests run, 1 waits, the rest are refused at once.

    The wait budget is 60 s and the running requests end after 3 s: a request that had waited
    would have been served, so each 503 was refused without waiting.
    """
    log = tmp_path / "server.log"
    settings = {"concurrency": 2, "queue_length": 1, "queue_timeout": 60, "timeout": 30}
    settings["queue_lenght"] = 5  # misspelt: warned about, and changes nothing
    with serve(services["hung"], log, **settings) as url:
        with ThreadPoolExecutor(3) as pool:
            running = [pool.submit(httpx.post, url + "/hung", json={"delay": 3.0}, timeout=60)]
            running.append(pool.submit(httpx.post, url + "/hung", json={"delay": 3.0}, timeout=60))
            _until(lambda: _metric(url, "notebook_slots_busy") == 2)
            queued = pool.submit(httpx.post, url + "/hung", json={}, timeout=60)
            _until(lambda: _metric(url, "notebook_requests_waiting") == 1)
            refused = [httpx.post(url + "/hung", json={}, timeout=60) for _ in range(3)]
            assert [r.status_code for r in refused] == [503] * 3
            assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
            assert "busy" in refused[0].json()["detail"]
            assert _metric(url, "notebook_slots") == 2
            assert [f.result().status_code for f in running] == [200, 200]
            assert queued.result().status_code == 200
        assert _metric(url, "notebook_overload_rejections_total", route="/hung") == 3
        assert _metric(url, "notebook_requests_waiting") == 0
    assert "2 slots per worker process (SERVICE_CONCURRENCY)" in log.read_text()
    assert "did you mean SERVICE_QUEUE_LENGTH?" in log.read_text()


@pytest.mark.slow
def test_process_mode_kills_hung_work(services: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with serve(services["hung_process"], log, concurrency=2, timeout=1) as url:
        first = httpx.post(url + "/hung_process", json={"mode": "pid"}).json()["pid"]
        pidfiles = [tmp_path / f"worker{i}.pid" for i in range(2)]
        with ThreadPoolExecutor(2) as pool:
            hung = list(
                pool.map(
                    lambda f: httpx.post(
                        url + "/hung_process", json={"delay": 60.0, "pidfile": str(f)}, timeout=30
                    ),
                    pidfiles,
                )
            )
        assert [r.status_code for r in hung] == [504, 504]
        killed = [int(pidfile.read_text()) for pidfile in pidfiles]
        for pid in killed:
            _until(lambda pid=pid: not _alive(pid), limit=10)  # killed, not left running
        answer = httpx.post(url + "/hung_process", json={"mode": "pid"}, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["pid"] not in (0, *killed)  # a fresh worker process answered
        assert first != 0
        failing = httpx.post(url + "/hung_process", json={"mode": "raise"}, timeout=30)
        assert failing.status_code == 500 and len(failing.json()["error_id"]) == 32
    text = log.read_text()
    assert failing.json()["error_id"] in text and "notebook refuses" in text


@contextmanager
def _uvicorn(folder: Path, log: Path, *args: str, **settings: object) -> Iterator[Any]:
    """uvicorn with extra arguments; yields (process, url); killed at the end whatever happens."""
    port = free_port()
    env = {**os.environ, **{f"SERVICE_{k.upper()}": str(v) for k, v in settings.items()}}
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), *args]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=folder, stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.slow
def test_a_request_cut_by_the_shutdown_gets_json(services: dict[str, Path], tmp_path: Path) -> None:
    """The graceful shutdown ends before the request: it is answered with a JSON 503 (uvicorn
    would send a plain-text 500), and its log line is written before the process exits."""
    log = tmp_path / "server.log"
    with _uvicorn(services["hung"], log, "--timeout-graceful-shutdown", "1", timeout=60) as (
        process,
        url,
    ):
        with ThreadPoolExecutor(1) as pool:
            cut = pool.submit(httpx.post, url + "/hung", json={"delay": 20.0}, timeout=60)
            _until(lambda: _metric(url, "notebook_slots_busy") == 1)
            process.terminate()
            answer = cut.result()
        process.wait(timeout=60)
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"] == "the service is shutting down; retry"
    assert answer.headers["retry-after"] == "1"
    lines = _log_lines(log)
    assert any("cut by the server's shutdown" in line["message"] for line in lines)
    assert any(line.get("path") == "/hung" and line.get("status") == 503 for line in lines)


@pytest.mark.slow
def test_process_mode_refuses_new_connections_after_sigterm(
    services: dict[str, Path], tmp_path: Path
) -> None:
    """The worker processes do not keep the listening socket open: while the server drains,
    a new connection is refused instead of waiting in a backlog nobody accepts from."""
    log = tmp_path / "server.log"
    with _uvicorn(
        services["hung_process"], log, "--timeout-graceful-shutdown", "30", timeout=60
    ) as (process, url):
        port = int(url.rsplit(":", 1)[1])
        with ThreadPoolExecutor(1) as pool:
            draining = pool.submit(
                httpx.post, url + "/hung_process", json={"delay": 8.0}, timeout=60
            )
            _until(lambda: _metric(url, "notebook_slots_busy") == 1)
            process.terminate()
            draining_now = "Waiting for connections to close"  # uvicorn has closed its socket
            _until(lambda: draining_now in log.read_text() or process.poll() is not None)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=30).close()
            assert draining.result().status_code == 200  # the request in flight finished
        process.wait(timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped by pebble is a zombie: dead for our purpose.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.slow
def test_logs_metrics_request_ids_and_api_keys(services: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with serve(services["hung"], log, api_keys="first-key,second-key") as url:
        assert httpx.post(url + "/hung", json={}).status_code == 401
        wrong = httpx.post(url + "/hung", json={}, headers={"X-API-Key": "first-ke"})
        assert wrong.status_code == 401
        for key in ("first-key", "second-key"):
            ok = httpx.post(url + "/hung", json={}, headers={"X-API-Key": key})
            assert ok.status_code == 200, ok.text
        for open_path in ("/health", "/ready", "/metrics", "/docs", "/openapi.json"):
            assert httpx.get(url + open_path).status_code == 200, open_path
        assert httpx.get(url + "/version").status_code == 401
        keyed = {"X-API-Key": "second-key"}

        traced = httpx.post(url + "/hung", json={}, headers={**keyed, "X-Request-ID": "trace-42"})
        assert traced.headers["x-request-id"] == "trace-42"
        made = httpx.post(url + "/hung", json={}, headers=keyed).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        failed = httpx.post(url + "/hung", json={"mode": "raise"}, headers=keyed)
        assert failed.status_code == 500
        error_id = failed.json()["error_id"]

        version = httpx.get(url + "/version", headers=keyed).json()
        lock = json.loads((services["hung"] / "promoter.lock.json").read_text())
        assert version["notebooks"] == {"hung.ipynb": lock["notebooks"][0]["sha256"]}
        assert version["service"] == "hung" and version["promoter"]

        def count(status: str) -> float:
            return _metric(url, "http_requests_total", method="POST", route="/hung", status=status)

        assert (count("200"), count("401"), count("500")) == (4, 2, 1)
        assert _metric(url, "http_server_errors_total", route="/hung") == 1

        def timed(status: str) -> float:
            labels = {"method": "POST", "route": "/hung", "status": status}
            return _metric(url, "http_request_duration_seconds_count", **labels)

        assert (timed("200"), timed("401"), timed("500")) == (4, 2, 1)

    lines = _log_lines(log)
    traced_lines = [line for line in lines if line.get("request_id") == "trace-42"]
    request_line = next(line for line in traced_lines if line["logger"] == "app.request")
    assert {k: request_line[k] for k in ("method", "route", "status")} == {
        "method": "POST",
        "route": "/hung",
        "status": 200,
    }
    assert request_line["latency_ms"] >= 0
    # The notebook's own log line, in a worker thread, carries the request id too.
    assert any(line["logger"] == "notebook" for line in traced_lines)
    assert sum(1 for line in lines if line.get("request_id") == made) == 2  # notebook + request
    error_lines = [line for line in lines if line.get("error_id") == error_id]
    assert any(
        "ValueError: the notebook refuses" in line.get("traceback", "") for line in error_lines
    )
    assert any(line["logger"] == "app.request" and line["status"] == 500 for line in error_lines)
    assert not any("API-key auth is off" in line["message"] for line in lines)


@pytest.mark.slow
def test_warns_when_api_keys_are_off(services: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with serve(services["hung"], log, log_format="text") as url:
        assert (
            httpx.post(url + "/hung", json={}, headers={"X-Request-ID": "t-1"}).status_code == 200
        )
    text = log.read_text()
    assert "WARNING app [-] API-key auth is off" in text
    assert re.search(r"INFO app\.request \[t-1\] POST /hung 200", text)


@pytest.mark.slow
def test_docs_render_with_the_network_blocked(services: dict[str, Path], tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    log = tmp_path / "server.log"
    blocked: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with serve(services["hung"], log) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_local)
            page.goto(url + "/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert "Hung" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(".opblock-summary-path[data-path='/hung']", timeout=30_000)
            assert blocked == []  # Swagger UI asked for nothing but the service
            page.goto(url + "/redoc")
            page.wait_for_selector("redoc h1, [role=main] h1", timeout=30_000)
        finally:
            browser.close()
    # ReDoc's bundle links its "powered by" logo from its CDN: cosmetic, the page renders.
    assert set(blocked) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


@pytest.mark.slow
def test_ready_says_when_the_setup_failed(tmp_path: Path) -> None:
    """A service whose data file went missing says so on /ready, not "starting" forever."""
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "rates.csv").write_text("rate\n0.5\n")
    notebook = write_notebook(
        tmp_path / "nb" / "rates.ipynb",
        ("code", "rate = float(open('rates.csv').read().split()[1])", []),
        ("code", "x = 2.0", ["parameters"]),
        ("code", "{'y': x * rate}", ["response"]),
    )
    out = tmp_path / "svc"
    assert run_cli("convert", notebook, "-o", out).returncode == 0
    (out / "rates.csv").unlink()  # the file did not travel with the image, say
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)]
    server = subprocess.Popen(command, cwd=out, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(url + "/ready", timeout=2)
                if ready.json().get("status") != "starting":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready.status_code == 503 and ready.json()["status"] == "setup failed"
        answer = httpx.post(url + "/rates", json={}, timeout=5)
        assert answer.status_code == 503 and "setup cells failed" in answer.json()["detail"]
        assert "error_id" in answer.json()
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.slow
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", '"\\ud800"'])
def test_inputs_json_cannot_carry_get_a_json_422(
    value: str, converted: dict[str, Path], serve_folder
) -> None:
    """FastAPI's own 422 echoes the input and failed (a plain 500) on these (issue 13)."""
    server = serve_folder(converted["loan_calculator"])
    reply = httpx.post(
        server.url + "/loan_calculator",
        content='{"principal": ' + value + "}",
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "principal"]


def test_an_echoed_input_nested_too_deeply_is_not_echoed(runtime: types.ModuleType) -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    assert runtime.errors._json_safe(deep) == "<input nested deeper than 64 levels>"
    assert runtime.errors._json_safe({"a": [[1]]}) == {"a": [[1]]}
    assert runtime.errors._json_safe(float("nan")) == "nan"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.slow
def test_deep_bodies_and_nul_paths_answer_json_never_500(tmp_path: Path, serve_folder) -> None:
    """Issue 13: a JSON body nested near the recursion limit parsed, then the 422 that echoes it
    failed to render (a 500); 100k deep, and NUL in a path, must answer JSON too."""
    notebook = write_notebook(
        tmp_path / "deep.ipynb",
        ("code", "rate = 0.5\nitems: list[int] = [1, 2]", ["parameters"]),
        ("code", "{'total': rate * sum(items)}", ["response"]),
    )
    assert run_cli("convert", notebook, "-o", tmp_path / "svc").returncode == 0
    url = serve_folder(tmp_path / "svc").url
    statuses = set()
    with httpx.Client(base_url=url, headers={"Content-Type": "application/json"}) as client:
        # The depth where parsing starts to fail depends on the stack: cover the band around it.
        for depth in [*range(850, 1050), 100_000]:
            for body in (
                _nested(depth),
                '{"rate": ' + _nested(depth) + "}",
                '{"items": ' + _nested(depth) + "}",
                '{"rate": ' + '{"a": ' * depth + "1" + "}" * depth + "}",
            ):
                reply = client.post("/deep", content=body)
                assert reply.status_code in (400, 422), (depth, body[:20], reply.text[:200])
                assert reply.json()["detail"]
                statuses.add(reply.status_code)
        for path in ("/deep%00", "/%00", "/deep/%00", "/health%00", "/de%00ep"):
            reply = client.post(path, content="{}")
            assert reply.status_code in (400, 404, 405), (path, reply.text)
            assert reply.json()["detail"]
        assert client.post("/deep", content='{"items": [3]}').json() == {"total": 1.5}
        assert client.get("/health").status_code == 200
    assert statuses == {400, 422}


@pytest.mark.slow
def test_sys_exit_in_a_handler_is_a_500_with_an_error_id(tmp_path: Path, serve_folder) -> None:
    notebook = write_notebook(
        tmp_path / "quits.ipynb",
        ("code", "import sys", []),
        ("code", "how = 'none'", ["parameters"]),
        (
            "code",
            "if how == 'exit':\n    sys.exit(3)\n"
            "if how == 'interrupt':\n    raise KeyboardInterrupt",
            [],
        ),
        ("code", "{'how': how}", ["response"]),
    )
    assert run_cli("convert", notebook, "-o", tmp_path / "svc").returncode == 0
    url = serve_folder(tmp_path / "svc").url + "/quits"
    for how in ("exit", "interrupt"):
        reply = httpx.post(url, json={"how": how})
        assert reply.status_code == 500 and "error_id" in reply.json(), reply.text
    assert httpx.post(url, json={}).json() == {"how": "none"}  # the worker lives on


GATED_SETUP = '''\
import asyncio
import os
import time


class Gated:
    """An answer whose JSON conversion waits until the file `gate` exists."""

    def __init__(self, gate: str, started: str) -> None:
        self.gate, self.started = gate, started

    def model_dump(self, mode: str = "python") -> dict:
        if self.started:
            open(self.started, "w").close()
        while self.gate and not os.path.exists(self.gate):
            time.sleep(0.01)
        return {"converted": True}
'''


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One service, two routes whose answer converts to JSON only once a file exists: a
    plain run (worker thread) and an async one (top-level await, on the event loop)."""
    folder = tmp_path_factory.mktemp("gated")
    notebooks = [
        write_notebook(
            folder / f"{name}.ipynb",
            ("markdown", "# Gated\n\nAn answer whose JSON conversion waits for a file.", []),
            ("code", GATED_SETUP, ["setup"]),
            (
                "code",
                'gate = ""  # File to wait for\nstarted = ""  # Written as the conversion starts',
                ["parameters"],
            ),
            ("code", handler, []),
            ("code", "answer", ["response"]),
            metadata={"timeout": 30},
        )
        for name, handler in [
            ("gated", "answer = Gated(gate, started)"),
            ("gated_async", "await asyncio.sleep(0)\nanswer = Gated(gate, started)"),
        ]
    ]
    result = run_cli("convert", *notebooks, "-o", folder / "svc")
    assert result.returncode == 0, result.output
    return folder / "svc"


@pytest.mark.slow
@pytest.mark.parametrize("route", ["/gated", "/gated_async"])
def test_answer_json_is_written_off_the_loop_under_the_timeout(
    gated: Path, tmp_path: Path, route: str
) -> None:
    """Issue 13: a large answer's JSON conversion ran on the event loop, outside the timeout
    (/health stalled 3.3 s). Here the conversion provably runs (it waits for a file the test
    has not made): /health answers meanwhile, and the request gets 504 at its timeout."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    with (
        serve(gated, tmp_path / "server.log", timeout=5) as url,
        ThreadPoolExecutor(1) as pool,
    ):
        body = {"gate": str(gate), "started": str(started)}
        big = pool.submit(httpx.post, url + route, json=body, timeout=60)
        _until(started.exists)  # the answer is being converted to JSON now
        health = httpx.get(url + "/health", timeout=30)  # the loop is free
        assert health.status_code == 200
        assert not big.done()  # /health answered while the conversion ran
        reply = big.result()
        assert reply.status_code == 504, reply.text  # the conversion ran past the timeout
        assert len(reply.json()["error_id"]) == 32
        assert _metric(url, "notebook_timeouts_total", route=route) == 1
        assert _metric(url, "notebook_timed_out_running") == 1  # its thread holds a slot
        gate.touch()
        _until(lambda: _metric(url, "notebook_timed_out_running") == 0)
        done = httpx.post(url + route, json=body, timeout=60)
        assert done.status_code == 200 and done.json() == {"converted": True}
