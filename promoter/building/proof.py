"""Prove the service over HTTP as it will run: varied, concurrent requests and shared state.

``verify`` proves each pipeline answers what the notebook answered; this proves the served
app does, for every parameter set, alone and under load, without changing what requests share.
The service runs with uvicorn in the interpreter it was verified with (its own environment),
wrapped by ``fingerprint`` (a probe of its shared state, only while it is proven). In order:

    differential  each parameter set (the defaults twice, the examples, generated values) is
                  sent alone and must answer what papermill's run of the notebook answered
    concurrency   the same sets, mixed, at least 16 in flight: each answer must equal its
                  sequential one (a request that saw another's data does not)
    state         the shared state's digest before and after all those requests must be equal
                  (a mutation that happens to give equal answers), except the names
                  ``metadata.promoter.shared`` declares
    memory        50 default requests per route: a process that keeps growing is reported

Non-deterministic routes (``determinism``'s rule) are checked for status and shape only.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promoter._exceptions import Location, PromoterError, VerificationError
from promoter.building.verify import cell_of, first_difference
from promoter.reading.notebook import Notebook, Role
from promoter.reading.source import parse_cell
from promoter.running.processes import ProcessGroup

__all__ = ["Proof", "ProofOptions", "RequestSet", "RouteProof", "Step", "prove_service"]

#: The answer of a parameter set the notebook itself failed on (nothing to compare with).
NOTEBOOK_FAILED: Any = object()
IN_FLIGHT = 16
MEMORY_REQUESTS = 50
#: Growth over ``MEMORY_REQUESTS`` default requests worth reporting (allocator noise is less).
MEMORY_LIMIT = 8 * 1024 * 1024
_SLOW = 0.25  # seconds per request above which the memory step would take too long


@dataclass(frozen=True)
class ProofOptions:
    """How far ``convert`` and ``check`` prove a service.

    Attributes:
        isolated: In a fresh environment built from the service's own pins (else in
            promoter's own environment, and no lock file is shipped).
        generated: Request bodies generated from each request model, besides the defaults
            and examples (each costs one papermill run of the notebook).
    """

    isolated: bool = True
    generated: int = 2


@dataclass(frozen=True)
class RequestSet:
    """One request body for a route and the notebook's answer to it."""

    label: str
    body: dict[str, Any]
    expected: Any


@dataclass(frozen=True)
class RouteProof:
    """What to prove of one route."""

    notebook: Notebook
    route: str
    sets: tuple[RequestSet, ...]
    deterministic: bool
    package: str


@dataclass(frozen=True)
class Step:
    """One step of the proof, for reports (``check --json``)."""

    name: str
    status: str
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The step as JSON-compatible data."""
        return {
            "step": self.name,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Proof:
    """The steps that ran, and what is worth a warning (memory growth)."""

    steps: list[Step] = field(default_factory=list)
    warnings: list[tuple[str, Location]] = field(default_factory=list)


def prove_service(
    folder: Path, python: Path, routes: list[RouteProof], *, timeout: float = 600
) -> Proof:
    """Serve ``folder`` with ``python`` and prove every route (see the module docstring).

    Raises:
        VerificationError: A route answers differently from the notebook, or under
            concurrency, or changes shared state; names the route, the parameters and, when
            found, the cell and line.
    """
    proof = Proof()
    with _served(folder, python, timeout) as server:
        begin = time.perf_counter()
        before = server.state()
        sequential = {r.route: _sequential(server, r) for r in routes}
        proof.steps.append(_step("differential", begin, _counted(routes, "sent alone")))
        begin = time.perf_counter()
        problem = _concurrent(server, routes, sequential)
        changed = _changed(before, server.state(), routes)
        if problem is not None:
            raise _concurrency_error(problem, changed)
        proof.steps.append(_step("concurrency", begin, f"{IN_FLIGHT}+ in flight, mixed"))
        if changed:
            raise _state_error(changed)
        proof.steps.append(_step("state", begin, "shared state unchanged"))
        begin = time.perf_counter()
        for route in routes:
            proof.warnings += _memory(server, route, folder)
        proof.steps.append(_step("memory", begin, f"{MEMORY_REQUESTS} default requests a route"))
    return proof


def _step(name: str, begin: float, detail: str) -> Step:
    return Step(name, "passed", detail, time.perf_counter() - begin)


def _counted(routes: list[RouteProof], how: str) -> str:
    """``3 parameter sets (1 defaults, 2 generated) sent alone``."""
    kinds: dict[str, int] = {}
    for route in routes:
        for request in route.sets:
            kind = request.label.split()[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    parts = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    return f"{sum(kinds.values())} parameter sets ({parts}) {how}"


class _Server:
    """The running service: requests to it, and its process."""

    def __init__(self, url: str, pid: int, timeout: float, key: str) -> None:
        import httpx

        self.url = url
        self.pid = pid
        self.client = httpx.Client(base_url=url, timeout=timeout, headers={"X-API-Key": key})

    def post(self, route: str, body: dict[str, Any]) -> tuple[int, Any, float]:
        begin = time.perf_counter()
        reply = self.client.post(route, json=body)
        while reply.status_code == 503 and time.perf_counter() - begin < 60:
            time.sleep(0.05)  # shed by the admission queue: not an answer of the code
            reply = self.client.post(route, json=body)
        try:
            answer = reply.json()
        except ValueError:
            answer = reply.text[:300]
        return reply.status_code, answer, time.perf_counter() - begin

    def state(self) -> dict[str, str]:
        return dict(self.client.get("/__promoter__/state").json())

    def trace(self, action: str) -> list[dict[str, Any]]:
        return list(self.client.post(f"/__promoter__/trace/{action}").json())

    def rss(self) -> int:
        import psutil

        return int(psutil.Process(self.pid).memory_info().rss)


@contextmanager
def _served(folder: Path, python: Path, timeout: float) -> Iterator[_Server]:
    """Start the service (with the probes) on a free port; stop its whole session after."""
    port = _free_port()
    source = Path(__file__).with_name("fingerprint.py").read_text(encoding="utf-8")
    # A key of this run's own (a set SERVICE_API_KEYS must hold one: an empty value no longer
    # turns auth off), over whatever keys a .env in the folder holds.
    key = secrets.token_hex(16)
    environment = {
        **os.environ,
        "SERVICE_CONCURRENCY": str(IN_FLIGHT * 2),
        "SERVICE_QUEUE_TIMEOUT": "60",
        "SERVICE_LOG_LEVEL": "WARNING",
        "SERVICE_API_KEYS": key,
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(python), "-c", source, str(folder), str(port)],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
        group = ProcessGroup.of(process.pid)
        try:
            server = _Server(f"http://127.0.0.1:{port}", process.pid, timeout, key)
            _wait_ready(server, process, log, timeout)
            yield server
        finally:
            if group is not None:
                group.kill()
            process.kill()
            process.wait()


def _wait_ready(
    server: _Server, process: subprocess.Popen[bytes], log: Any, timeout: float
) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
            raise VerificationError(
                "the generated app (app/main.py) cannot start in the service's own "
                f"environment: {lines[-1] if lines else 'it exited'}",
                hint="a name in the notebook may clash with the generated code, or the "
                "service lacks a dependency; please report it with the notebook",
            )
        try:
            if server.client.get("/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise VerificationError(f"the generated app was not ready after {timeout:g} s")


def _sequential(server: _Server, route: RouteProof) -> list[tuple[int, Any]]:
    """Each set alone (the defaults twice): each must answer as the notebook did."""
    answers = []
    for request in (route.sets[0], *route.sets):  # the defaults twice first
        status, answer, _ = server.post(route.route, request.body)
        if request.expected is NOTEBOOK_FAILED:
            answers.append((status, answer))
            continue
        if status != 200:
            raise _answer_error(route, request, f"answers {status} ({_short(answer)})")
        difference = first_difference(answer, request.expected)
        if difference is not None and route.deterministic and not route.notebook.settings.shared:
            again = len(answers) == 1
            raise _answer_error(
                route,
                request,
                f"answered differently ({difference})",
                again,
            )
        answers.append((status, answer))
    return answers[1:]


def _concurrent(
    server: _Server, routes: list[RouteProof], sequential: dict[str, list[tuple[int, Any]]]
) -> tuple[RouteProof, RequestSet, str] | None:
    """Every set of every route, mixed, ``IN_FLIGHT`` at a time: the first answer that changed."""
    work = [(r, i) for r in routes for i in range(len(r.sets))]
    rounds = max(2, -(-IN_FLIGHT * 2 // len(work)))
    jobs = [job for _ in range(rounds) for job in work]
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        replies = list(
            pool.map(lambda job: server.post(job[0].route, job[0].sets[job[1]].body), jobs)
        )
    for (route, index), (status, answer, _) in zip(jobs, replies, strict=True):
        alone_status, alone = sequential[route.route][index]
        request = route.sets[index]
        if status != alone_status:
            return route, request, f"answered {status} ({_short(answer)}), alone {alone_status}"
        if route.deterministic and not route.notebook.settings.shared:
            difference = first_difference(answer, alone)
            if difference is not None:
                return route, request, f"answered differently than alone ({difference})"
    return None


def _changed(
    before: dict[str, str], after: dict[str, str], routes: list[RouteProof]
) -> list[tuple[str, RouteProof | None]]:
    """The shared state that changed, with the route whose pipeline holds it."""
    changed = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        owner = next((r for r in routes if key.startswith(r.package + ".pipeline.")), None)
        name = key.removeprefix(owner.package + ".pipeline.") if owner else key
        if owner is not None and name.split(".")[0].rstrip("()") in owner.notebook.settings.shared:
            continue
        changed.append((name, owner))
    return changed


def _memory(server: _Server, route: RouteProof, folder: Path) -> list[tuple[str, Location]]:
    """50 default requests: a route whose process keeps growing is reported, with the line."""
    status, _, seconds = server.post(route.route, {})
    if status != 200 or seconds > _SLOW:
        return []
    start = server.rss()
    for _ in range(MEMORY_REQUESTS):
        server.post(route.route, {})
    grown = server.rss() - start
    if grown <= MEMORY_LIMIT:
        return []
    where = route.notebook.at(route.notebook.response_cell)
    server.trace("start")
    for _ in range(MEMORY_REQUESTS // 2):
        server.post(route.route, {})
    lines = server.trace("stop")
    pipeline = folder / route.package.replace(".", "/") / "pipeline.py"
    statement = ""
    if lines and Path(lines[0]["file"]).resolve() == pipeline.resolve():
        where, statement = cell_of(pipeline, int(lines[0]["line"]), route.notebook)
    message = (
        f"{route.route} grew by {grown / 1_048_576:.1f} MB over {MEMORY_REQUESTS} default "
        "requests"
        + (f", most at `{statement}`" if statement else "")
        + ": a kept figure never closed (plt.close), or a cache that keeps growing, will "
        "exhaust the container's memory"
    )
    return [(message, where)]


def _answer_error(
    route: RouteProof, request: RequestSet, what: str, again: bool = False
) -> VerificationError:
    if again:
        what = (
            f"POST {route.route}: a second request with the same parameters "
            f"{_body(request)} {what}: the handler keeps state between requests"
        )
    else:
        what = f"POST {route.route} with {_body(request)} {what}, unlike the notebook's run"
    return VerificationError(
        what,
        location=route.notebook.at(route.notebook.response_cell),
        hint="keep per-request values in local variables; declare setup names requests share "
        'on purpose in metadata.promoter.shared (e.g. "shared": ["cache"])',
    )


def _concurrency_error(
    problem: tuple[RouteProof, RequestSet, str], changed: list[tuple[str, RouteProof | None]]
) -> VerificationError:
    route, request, what = problem
    location, found = _where_changed(changed, route)
    return VerificationError(
        f"POST {route.route} with {_body(request)} {what} under {IN_FLIGHT} concurrent "
        f"requests: requests see each other's data{found}",
        location=location,
        hint="a handler must not change what requests share (setup names, class attributes, "
        "module state, cached values, the working folder or sys.stdout): copy it first, or "
        "declare it in metadata.promoter.shared",
    )


def _state_error(changed: list[tuple[str, RouteProof | None]]) -> VerificationError:
    route = next((r for _, r in changed if r is not None), None)
    location, found = _where_changed(changed, route)
    return VerificationError(
        f"answering requests changed state that requests share{found}, though the answers "
        "stayed equal: the next request may see it",
        location=location,
        hint="copy the value in the handler before changing it, or declare the setup names "
        'shared on purpose in metadata.promoter.shared (e.g. "shared": ["cache"])',
    )


def _where_changed(
    changed: list[tuple[str, RouteProof | None]], route: RouteProof | None
) -> tuple[Location | None, str]:
    if not changed:
        where = route.notebook.at(route.notebook.response_cell) if route else None
        return where, ""
    names = ", ".join(f"`{name}`" for name, _ in changed[:4])
    for name, owner in changed:
        holder = owner or route
        if holder is not None:
            notebook = holder.notebook
            location = _handler_use(notebook, name.rstrip("()").split(".")[-1])
            if location is not None:
                return location, f" ({names} changed)"
    return (route.notebook.at() if route else None), f" ({names} changed)"


def _handler_use(notebook: Notebook, name: str) -> Location | None:
    """The first handler line that names ``name`` (a variable or an attribute)."""
    for cell in notebook.cells:
        if cell.role not in (Role.HANDLER, Role.RESPONSE):
            continue
        try:
            _, tree = parse_cell(notebook, cell)
        except PromoterError:
            continue
        for node in ast.walk(tree):
            named = (isinstance(node, ast.Name) and node.id == name) or (
                isinstance(node, ast.Attribute) and node.attr == name
            )
            if named:
                return notebook.at(cell, getattr(node, "lineno", None))
    return None


def _body(request: RequestSet) -> str:
    return f"{json.dumps(request.body, default=str)[:200]} ({request.label})"


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= 200 else text[:199] + "…"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
