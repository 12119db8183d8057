"""The jupyter_server extension behind JupyterLab's "Promote" button.

REST endpoints under the server's ``base_url``, authenticated like every Jupyter API (token or
cookie plus XSRF) and confined to the server's root directory::

    POST   promoter/inspect        {"path"}                       -> Inspection.to_dict()
    POST   promoter/convert        {"path", "out_dir", "force"}   -> Conversion.to_dict() + paths
    POST   promoter/roles          {"path", "content"?}           -> {"cells", "error", "warnings"}
    POST   promoter/jobs           {"action": "inspect"|"convert", ...} -> job (202)
    GET    promoter/jobs           -> {"jobs": [job...], "limit": N}
    GET    promoter/jobs/<id>      -> job: state, done/total, queue position, status and result
    DELETE promoter/jobs/<id>      -> the job, cancelled (its worker and kernel killed)
    POST   promoter/services       {"out_dir"}                    -> a running service (Try it)
    GET    promoter/services       -> {"services": [...]}
    DELETE promoter/services/<name>
    *      promoter/try/<name>/... -> proxied to that service on 127.0.0.1

Kernel runs (inspect and convert, directly or as jobs) each run in a worker process
(``promoter.frontends.jupyter_worker``) and at most ``Promoter.max_concurrent_runs`` at
once; the others wait in a queue. ``roles`` is static (no kernel): it inspects the notebook as
the browser holds it, unsaved edits included, so the labels on the cells follow the library's
rules exactly.

Paths in requests and in replies are API paths: relative to the root, ``/``-separated. Errors
answer JSON ``PromoterError.to_dict()``: 400 for a bad request, 403 for a path outside the root
or a missing permission, 404 for an unknown job or service, 422 for a notebook that cannot be
promoted (or an output folder that cannot be written).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import functools
import json
import posixpath
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeVar

import psutil
from jupyter_core.paths import is_hidden
from jupyter_core.utils import ensure_async, ensure_event_loop
from jupyter_server.base.handlers import APIHandler
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import url_path_join
from tornado import httpclient, web
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

import promoter
from promoter._exceptions import PromoterError, UsageError

__all__ = ["Promoter", "_load_jupyter_server_extension"]

_T = TypeVar("_T")
# Finished jobs are kept this long so a slow poller still reads the result.
_KEEP_FINISHED = 50
_LINE_LIMIT = 256 * 1024 * 1024


class Promoter(LoggingConfigurable):
    """Settings of the extension: ``c.Promoter.max_concurrent_runs = 2`` in a Jupyter config."""

    max_concurrent_runs = Integer(
        2,
        min=1,
        config=True,
        help="Kernel runs (inspect/convert) at once on this server; further clicks queue.",
    )
    service_start_timeout = Float(
        120.0,
        config=True,
        help="Seconds a 'Try it' service may take to answer /ready (its setup cells run).",
    )


async def _in_thread(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a blocking library call in a worker thread, off the server's event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(_isolated, func, *args, **kwargs))


def _isolated(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Call ``func`` in an empty context, then close any event loop made for it.

    jupyter_core's ``run_sync`` keeps "this thread's loop" in a context variable. An empty
    context keeps the server's running loop out of reach (``asyncio.to_thread`` would copy it
    in: "This event loop is already running"), and closing the loop afterwards keeps pool
    threads from holding an open loop, and its sockets, until the server exits.
    """
    context = contextvars.Context()
    try:
        return context.run(func, *args, **kwargs)
    finally:
        context.run(_close_thread_loop)


def _close_thread_loop() -> None:
    ensure_event_loop().close()
    asyncio.set_event_loop(None)


def _kill_tree(pid: int) -> None:
    """Kill a process and everything under it (a worker's kernel, uvicorn's children).

    SIGKILL, without waiting: the worker is reaped by whoever waits on it (its asyncio
    subprocess), the kernel by init once its parent is gone.
    """
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------------
# Kernel runs: a bounded queue of worker processes


@dataclass
class Job:
    """One inspect or convert run: queued, then running in a worker process, then finished."""

    id: str
    action: str
    request: dict[str, Any]
    notebook: str
    created: float = field(default_factory=time.monotonic)
    state: str = "queued"  # queued | running | done | failed | cancelled
    done: int = 0
    total: int = 0
    status: int | None = None
    result: dict[str, Any] | None = None
    pid: int | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def to_dict(self, position: int | None) -> dict[str, Any]:
        """The job as the browser polls it (``position``: runs ahead of it in the queue)."""
        return {
            "id": self.id,
            "action": self.action,
            "notebook": self.notebook,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "position": position,
            "status": self.status,
            "result": self.result,
        }


class Runner:
    """Runs jobs in worker processes, at most ``limit`` at once, first come first served."""

    def __init__(self, limit: int, log: Any) -> None:
        self.limit = limit
        self.log = log
        self.jobs: dict[str, Job] = {}
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, action: str, request: dict[str, Any], notebook: str) -> Job:
        """Queue a run; it starts as soon as a slot is free."""
        job = Job(secrets.token_hex(8), action, request, notebook)
        self.jobs[job.id] = job
        self._forget_old()
        task = asyncio.ensure_future(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def position(self, job: Job) -> int | None:
        """How many queued jobs are ahead of ``job`` (``None`` unless it is queued)."""
        if job.state != "queued":
            return None
        return sum(1 for j in self.jobs.values() if j.state == "queued" and j.created < job.created)

    def running(self) -> int:
        """Jobs whose worker (and kernel) is alive now."""
        return sum(1 for j in self.jobs.values() if j.state == "running")

    def cancel(self, job: Job) -> None:
        """Stop a job: drop it from the queue, or kill its worker and its kernel."""
        if job.finished.is_set():
            return
        job.state = "cancelled"
        job.status, job.result = 499, {"error": "Cancelled", "message": "the run was cancelled"}
        if job.pid is not None:
            _kill_tree(job.pid)
        job.finished.set()

    def shutdown(self) -> None:
        """Cancel every job (the server is stopping)."""
        for job in list(self.jobs.values()):
            self.cancel(job)

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.finished.is_set()]
        for job in finished[: max(0, len(finished) - _KEEP_FINISHED)]:
            del self.jobs[job.id]

    async def _run(self, job: Job) -> None:
        async with self._slots:
            if job.state == "cancelled":
                return
            job.state = "running"
            try:
                await self._work(job)
            except Exception as exc:
                self.log.exception("promoter: job %s failed", job.id)
                job.status, job.result = 500, _internal_error(exc)
            if job.state != "cancelled":
                job.state = "done" if job.status == 200 else "failed"
            job.finished.set()

    async def _work(self, job: Job) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "promoter.frontends.jupyter_worker",
            # The result is one JSON line; a big sample response outgrows the 64 KiB default.
            limit=_LINE_LIMIT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        job.pid = process.pid
        if job.state == "cancelled":  # cancelled while the process started
            _kill_tree(process.pid)
        assert process.stdin and process.stdout and process.stderr
        process.stdin.write(json.dumps({"action": job.action, **job.request}).encode())
        process.stdin.close()
        stderr = asyncio.ensure_future(process.stderr.read())
        async for line in process.stdout:
            message = json.loads(line)
            if "progress" in message:
                job.done, job.total = message["progress"]
            elif "status" in message:
                job.status, job.result = message["status"], message["result"]
        await process.wait()
        errors = (await stderr).decode(errors="replace")
        if job.state == "cancelled":
            return
        if job.status is None:
            tail = "\n".join(errors.strip().splitlines()[-5:])
            job.status, job.result = (
                500,
                _internal_error(
                    RuntimeError(f"the worker exited with {process.returncode}: {tail}")
                ),
            )
        if job.status == 500 and job.result is not None:
            self.log.error("promoter: %s", job.result.pop("traceback", job.result["message"]))


def _internal_error(exc: BaseException) -> dict[str, Any]:
    return {
        "error": "InternalError",
        "message": f"promoter failed unexpectedly: {type(exc).__name__}: {exc}",
        "hint": "see the Jupyter server log for the traceback",
    }


# ---------------------------------------------------------------------------------------------
# "Try it": generated services run by the server


@dataclass
class Service:
    """A generated service this server started (uvicorn on 127.0.0.1)."""

    name: str
    out_dir: str
    port: int
    process: asyncio.subprocess.Process
    log: Path

    def to_dict(self) -> dict[str, Any]:
        """Where the browser reaches it: through the Jupyter server, behind its auth.

        ``url`` and ``docs`` are relative to the server's base URL, as the browser's own
        ``ServerConnection`` settings join them.
        """
        url = f"promoter/try/{self.name}/"
        return {"name": self.name, "out_dir": self.out_dir, "url": url, "docs": url + "docs"}


class Services:
    """The running "Try it" services, by name; stopped on request and on server shutdown."""

    def __init__(self, base_url: str, start_timeout: float) -> None:
        self.base_url = base_url
        self.start_timeout = start_timeout
        self.running: dict[str, Service] = {}
        self._logs: Path | None = None

    @staticmethod
    def name_for(out_dir: str) -> str:
        """A URL-safe name for a service folder (its API path, ``/`` made ``-``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", out_dir).strip("-.") or "service"

    async def start(self, folder: Path, out_dir: str) -> Service:
        """Start (or restart) the service in ``folder``; answer once ``/ready`` says so."""
        name = self.name_for(out_dir)
        await self.stop(name)
        port = _free_port()
        if self._logs is None:
            self._logs = Path(tempfile.mkdtemp(prefix="promoter-try-"))
        log = self._logs / f"{name}.log"
        root_path = url_path_join(self.base_url, "promoter", "try", name)
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                # /docs then asks for <root_path>/openapi.json: through the proxy.
                "--root-path",
                root_path,
                cwd=folder,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        service = Service(name, out_dir, port, process, log)
        self.running[name] = service
        try:
            await self._wait_ready(service)
        except PromoterError:
            await self.stop(name)
            raise
        return service

    async def _wait_ready(self, service: Service) -> None:
        client = httpclient.AsyncHTTPClient()
        deadline = time.monotonic() + self.start_timeout
        url = f"http://127.0.0.1:{service.port}/ready"
        while time.monotonic() < deadline:
            if service.process.returncode is not None:
                raise UsageError(
                    f"the service in {service.out_dir} exited with {service.process.returncode}"
                    f": {self._tail(service)}",
                    hint="run its tests (pytest in the service folder) to see why",
                )
            with contextlib.suppress(OSError, httpclient.HTTPError):
                response = await client.fetch(url, request_timeout=2, raise_error=False)
                if response.code == 200:
                    return
            await asyncio.sleep(0.2)
        raise UsageError(
            f"the service in {service.out_dir} was not ready within {self.start_timeout:g} s: "
            f"{self._tail(service)}",
            hint="its setup cells may be slow; raise c.Promoter.service_start_timeout",
        )

    @staticmethod
    def _tail(service: Service) -> str:
        text = service.log.read_text(errors="replace") if service.log.exists() else ""
        return " / ".join(text.strip().splitlines()[-3:]) or "no output"

    async def stop(self, name: str) -> bool:
        """Stop a service; ``False`` when none runs under that name."""
        service = self.running.pop(name, None)
        if service is None:
            return False
        if service.process.returncode is None:
            service.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(service.process.wait(), timeout=5)
            except TimeoutError:
                _kill_tree(service.process.pid)
        return True

    def stop_all_now(self) -> None:
        """Kill every service at once (the server is stopping; no loop to wait on)."""
        for service in self.running.values():
            if service.process.returncode is None:
                _kill_tree(service.process.pid)
        self.running.clear()
        if self._logs is not None:
            shutil.rmtree(self._logs, ignore_errors=True)
            self._logs = None


# ---------------------------------------------------------------------------------------------
# Handlers


class _RequestError(Exception):
    """A request refused before the library runs: an HTTP status and a ``PromoterError``."""

    def __init__(self, status: int, error: PromoterError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


@dataclass
class _State:
    """What every handler receives: the root, the settings, the job queue, the services."""

    root: Path
    config: Promoter
    runner: Runner
    services: Services


class _PromoterHandler(APIHandler):
    """What the endpoints share: permissions, body parsing, path confinement and JSON errors."""

    # The permissions a user needs, as (action, resource) pairs of jupyter_server's authorizer.
    # Inspecting runs the notebook, so it needs the rights "Run All" needs.
    permissions: ClassVar[tuple[tuple[str, str], ...]] = (
        ("read", "contents"),
        ("execute", "kernels"),
    )

    def initialize(self, state: _State) -> None:
        """Receive the extension's shared state (tornado's handler-argument hook)."""
        self.state = state
        self.root = state.root

    async def _check_permissions(self) -> None:
        for action, resource in self.permissions:
            allowed = await ensure_async(
                self.authorizer.is_authorized(self, self.current_user, action, resource)
            )
            if not allowed:
                raise _RequestError(
                    403, UsageError(f"you are not allowed to {action} {resource} on this server")
                )

    def _body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise _RequestError(400, UsageError(f"the request body is not JSON: {exc}")) from exc
        except RecursionError as exc:
            raise _RequestError(
                400, UsageError("the request body nests too deeply to be read")
            ) from exc
        if not isinstance(body, dict):
            raise _RequestError(400, UsageError("the request body must be a JSON object"))
        return body

    async def _resolve(self, api_path: object, field: str) -> Path:
        """Turn an API path into a real path, refusing anything that leaves the root.

        ``resolve()`` follows symlinks, so a link inside the root that points outside it is
        caught by the same containment check as ``../``. Hidden paths are refused as the
        contents API refuses them (unless the server's contents manager allows hidden files).
        """
        if not isinstance(api_path, str) or not api_path.strip():
            raise _RequestError(400, UsageError(f'"{field}" must be a non-empty string'))
        if "\x00" in api_path:
            raise _RequestError(400, UsageError(f'"{field}" contains a NUL character'))
        if PurePosixPath(api_path).is_absolute() or Path(api_path).is_absolute():
            raise _RequestError(
                400,
                UsageError(
                    f'"{field}" must be relative to the server root, not absolute: {api_path}'
                ),
            )
        resolved = (self.root / api_path).resolve()
        if not resolved.is_relative_to(self.root):
            raise _RequestError(
                403, UsageError(f'"{field}" is outside the server root directory: {api_path}')
            )
        if await self._hidden(api_path, resolved):
            raise _RequestError(
                403,
                UsageError(
                    f'"{field}" is hidden (a name starting with "."), and this server hides '
                    f"hidden files: {api_path}",
                    hint="use a visible folder, or start the server with "
                    "--ContentsManager.allow_hidden=True",
                ),
            )
        return resolved

    async def _hidden(self, api_path: str, resolved: Path) -> bool:
        """Whether the contents API would hide ``api_path`` (as written, or where it leads).

        The path a symlink leads to is judged too: ``visible -> .git`` would else open a
        hidden folder the contents API keeps closed.
        """
        manager = self.contents_manager
        if manager.allow_hidden:
            return False
        written = posixpath.normpath(api_path)
        paths = [self._api_path(resolved)]
        if not written.startswith(".."):
            paths.append(written)
        for path in paths:
            try:
                # jupyter_server's contents managers are untyped.
                hidden = await ensure_async(manager.is_hidden(path))  # type: ignore[no-untyped-call]
            except NotImplementedError:  # a contents manager without the check
                hidden = is_hidden(self.root / path, self.root)
            if hidden:
                return True
        return False

    def _api_path(self, path: Path) -> str:
        """The API path (relative to the root, ``/``-separated) of a path inside the root."""
        return path.resolve().relative_to(self.root).as_posix()

    def _relative_locations(self, data: Any) -> Any:
        """Replace absolute notebook paths in a reply by API paths: the browser knows no other."""
        if isinstance(data, list):
            return [self._relative_locations(item) for item in data]
        if not isinstance(data, dict):
            return data
        out = {key: self._relative_locations(value) for key, value in data.items()}
        notebook = out.get("notebook")
        if isinstance(notebook, str) and Path(notebook).is_absolute():
            resolved = Path(notebook).resolve()
            if resolved.is_relative_to(self.root):
                out["notebook"] = self._api_path(resolved)
        return out

    def _reply(self, status: int, data: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self._relative_locations(data), default=str))

    def _error_reply(self, status: int, error: PromoterError) -> None:
        data = error.to_dict()
        edited = getattr(error, "paths", None)
        if edited is not None:
            data["paths"] = list(edited)
        self._reply(status, data)

    async def _handle(self, run: Callable[[], Any]) -> None:
        try:
            await self._check_permissions()
            status, data = await run()
        except _RequestError as exc:
            self._error_reply(exc.status, exc.error)
        except UsageError as exc:
            self._error_reply(400, exc)
        except PromoterError as exc:
            self._error_reply(422, exc)
        except Exception as exc:
            # A bug, not a user error: the traceback goes to the server log, the browser gets
            # the same JSON shape as every other error.
            self.log.exception("promoter: %s failed", self.request.path)
            self._reply(500, _internal_error(exc))
        else:
            self._reply(status, data)

    # -- kernel runs, shared by the direct endpoints and the jobs --

    async def _run_request(self, action: str, body: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        """Validate an inspect/convert request; answer the worker's request and the notebook."""
        notebook = await self._resolve(body.get("path"), "path")
        if action in ("inspect", "convert") and not notebook.is_file():
            raise UsageError(f"no such notebook: {body['path']}", hint="check the path")
        if action == "inspect":
            return {"path": str(notebook)}, notebook
        if action != "convert":
            raise _RequestError(400, UsageError('"action" must be "inspect" or "convert"'))
        raw_out = body.get("out_dir")
        if raw_out is None:
            # The default is resolved like an explicit path, so a `<stem>_service` symlink
            # that leads outside the root is refused (403) rather than followed.
            parent = self._api_path(notebook.parent)
            raw_out = PurePosixPath(parent, f"{notebook.stem}_service").as_posix()
        out_dir = await self._resolve(raw_out, "out_dir")
        if out_dir == self.root:
            raise _RequestError(
                400, UsageError('"out_dir" must be a folder inside the server root, not the root')
            )
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise _RequestError(400, UsageError('"force" must be true or false'))
        return {"path": str(notebook), "out_dir": str(out_dir), "force": force}, notebook

    def _job_reply(self, job: Job) -> dict[str, Any]:
        data = job.to_dict(self.state.runner.position(job))
        if job.action == "convert" and job.status == 200 and job.result is not None:
            out_dir = Path(job.request["out_dir"])
            readme = out_dir / "README.md"
            data["result"] = {
                **job.result,
                "out_dir_path": self._api_path(out_dir),
                "readme": self._api_path(readme) if readme.is_file() else None,
            }
        return data

    def _job(self, job_id: str) -> Job:
        job = self.state.runner.jobs.get(job_id)
        if job is None:
            raise _RequestError(404, UsageError(f"no such job: {job_id}"))
        return job


class _DirectRunHandler(_PromoterHandler):
    """``POST promoter/<action>``: one run, answered when it finishes (queued like the jobs)."""

    action: ClassVar[str] = "inspect"

    @web.authenticated
    async def post(self) -> None:
        """Run the notebook in a worker (queued behind the server's other runs)."""
        await self._handle(self._run)

    async def _run(self) -> tuple[int, dict[str, Any]]:
        request, notebook = await self._run_request(self.action, self._body())
        job = self.state.runner.submit(self.action, request, self._api_path(notebook))
        try:
            await job.finished.wait()
        except asyncio.CancelledError:
            self.state.runner.cancel(job)
            raise
        reply = self._job_reply(job)
        return job.status or 500, reply["result"] or {}


class InspectHandler(_DirectRunHandler):
    """``POST promoter/inspect``: what the service would look like, without writing anything."""

    action = "inspect"


class ConvertHandler(_DirectRunHandler):
    """``POST promoter/convert``: write the service into a folder inside the root."""

    action = "convert"
    permissions = (*_PromoterHandler.permissions, ("write", "contents"))


class JobsHandler(_PromoterHandler):
    """``POST promoter/jobs`` starts a run; ``GET promoter/jobs`` lists them."""

    @web.authenticated
    async def post(self) -> None:
        """Queue an inspect or convert run; answer the job at once (202)."""
        await self._handle(self._submit)

    async def _submit(self) -> tuple[int, dict[str, Any]]:
        body = self._body()
        action = body.get("action")
        if action == "convert":
            allowed = await ensure_async(
                self.authorizer.is_authorized(self, self.current_user, "write", "contents")
            )
            if not allowed:
                raise _RequestError(403, UsageError("you are not allowed to write contents"))
        request, notebook = await self._run_request(str(action), body)
        job = self.state.runner.submit(str(action), request, self._api_path(notebook))
        return 202, self._job_reply(job)

    @web.authenticated
    async def get(self) -> None:
        """Every known job, oldest first, and the server's limit."""

        async def listing() -> tuple[int, dict[str, Any]]:
            runner = self.state.runner
            jobs = sorted(runner.jobs.values(), key=lambda j: j.created)
            return 200, {
                "limit": runner.limit,
                "running": runner.running(),
                "jobs": [self._job_reply(j) for j in jobs],
            }

        await self._handle(listing)


class JobHandler(_PromoterHandler):
    """``GET promoter/jobs/<id>`` polls a run; ``DELETE`` cancels it."""

    @web.authenticated
    async def get(self, job_id: str) -> None:
        """The job's state, progress and (once finished) result."""

        async def poll() -> tuple[int, dict[str, Any]]:
            return 200, self._job_reply(self._job(job_id))

        await self._handle(poll)

    @web.authenticated
    async def delete(self, job_id: str) -> None:
        """Cancel the job: its worker process and its kernel are killed."""

        async def cancel() -> tuple[int, dict[str, Any]]:
            job = self._job(job_id)
            self.state.runner.cancel(job)
            return 200, self._job_reply(job)

        await self._handle(cancel)


class RolesHandler(_PromoterHandler):
    """``POST promoter/roles``: each cell's role by the library's static inspection (no kernel).

    With ``content`` (the notebook JSON as the browser holds it, unsaved edits included) the
    inspection reads that, from a temporary copy named like the notebook; else the saved file.
    """

    permissions = (("read", "contents"),)

    @web.authenticated
    async def post(self) -> None:
        """Answer ``{"cells": [{index, id, role}] | null, "error": ..., "warnings": [...]}``."""
        await self._handle(self._roles)

    async def _roles(self) -> tuple[int, dict[str, Any]]:
        body = self._body()
        notebook = await self._resolve(body.get("path"), "path")
        content = body.get("content")
        if content is None:
            return 200, await _in_thread(self._inspect, notebook, notebook)
        if not isinstance(content, dict):
            raise _RequestError(400, UsageError('"content" must be a notebook (a JSON object)'))
        with tempfile.TemporaryDirectory(prefix="promoter-roles-") as tmp:
            copy = Path(tmp) / notebook.name
            copy.write_text(json.dumps(content), encoding="utf-8")
            return 200, await _in_thread(self._inspect, copy, notebook)

    def _inspect(self, path: Path, shown_as: Path) -> dict[str, Any]:
        def located(data: dict[str, Any]) -> dict[str, Any]:
            if data.get("notebook") == str(path):
                data["notebook"] = str(shown_as)
            return data

        try:
            inspection = promoter.inspect(path, execute=False)
        except PromoterError as exc:
            return {"cells": None, "error": located(exc.to_dict()), "warnings": []}
        data = inspection.to_dict()
        return {
            "cells": [
                {"index": c["index"], "id": c["id"], "role": c["role"]} for c in data["cells"]
            ],
            "error": None,
            "warnings": [located(w) for w in data["warnings"]],
        }


class ServicesHandler(_PromoterHandler):
    """``POST promoter/services`` starts "Try it" for a service folder; ``GET`` lists them."""

    @web.authenticated
    async def post(self) -> None:
        """Start the generated service in ``out_dir`` (restarting it if it runs)."""
        await self._handle(self._start)

    async def _start(self) -> tuple[int, dict[str, Any]]:
        body = self._body()
        folder = await self._resolve(body.get("out_dir"), "out_dir")
        if not (folder / "app" / "main.py").is_file():
            raise UsageError(
                f"no generated service in {body['out_dir']}",
                hint="click Generate first (the folder needs app/main.py)",
            )
        services = self.state.services
        service = await services.start(folder, self._api_path(folder))
        return 200, service.to_dict()

    @web.authenticated
    async def get(self) -> None:
        """The services running now."""

        async def listing() -> tuple[int, dict[str, Any]]:
            services = self.state.services
            running = [s.to_dict() for s in services.running.values()]
            return 200, {"services": running}

        await self._handle(listing)


class ServiceHandler(_PromoterHandler):
    """``DELETE promoter/services/<name>``: stop a "Try it" service."""

    @web.authenticated
    async def delete(self, name: str) -> None:
        """Stop the service (404 when none runs under that name)."""

        async def stop() -> tuple[int, dict[str, Any]]:
            if not await self.state.services.stop(name):
                raise _RequestError(404, UsageError(f"no running service named {name}"))
            return 200, {"name": name, "stopped": True}

        await self._handle(stop)


class TryProxyHandler(_PromoterHandler):
    """``promoter/try/<name>/<path>``: a request to a "Try it" service, behind Jupyter's auth.

    Only the body, the query and the content headers are forwarded; Jupyter's own cookies and
    token stay on this side.
    """

    _FORWARDED = ("Content-Type", "Accept", "X-Request-ID")
    _RETURNED = ("Retry-After", "X-Request-ID", "Location")

    async def _proxy(self, name: str, path: str) -> None:
        try:
            await self._check_permissions()
        except _RequestError as exc:
            self._error_reply(exc.status, exc.error)
            return
        service = self.state.services.running.get(name)
        if service is None:
            self._error_reply(404, UsageError(f"no running service named {name}"))
            return
        # tornado hands the path over decoded: encode it again, so a NUL, a space or a "?"
        # reaches the service as the browser sent it, not as raw bytes or a query.
        url = f"http://127.0.0.1:{service.port}/{urllib.parse.quote(path, safe='/')}"
        if self.request.query:
            url += f"?{self.request.query}"
        method = self.request.method or "GET"
        headers = {h: self.request.headers[h] for h in self._FORWARDED if h in self.request.headers}
        has_body = method in ("POST", "PUT", "PATCH")
        response = await httpclient.AsyncHTTPClient().fetch(
            url,
            method=method,
            headers=headers,
            body=self.request.body if has_body else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            raise_error=False,
            request_timeout=300,
        )
        if response.code == 599:  # tornado: no HTTP answer at all
            self._error_reply(502, UsageError(f"the service {name} did not answer"))
            return
        self.set_status(response.code)
        for header in self._RETURNED:
            if header in response.headers:
                self.set_header(header, response.headers[header])
        # APIHandler.finish would label every answer JSON; /docs is HTML.
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        self.finish(response.body, set_content_type=content_type)

    @web.authenticated
    async def get(self, name: str, path: str) -> None:
        """Forward a GET (``/docs``, ``/openapi.json``, ``/health``)."""
        await self._proxy(name, path)

    @web.authenticated
    async def post(self, name: str, path: str) -> None:
        """Forward a POST (the notebook's route)."""
        await self._proxy(name, path)


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    """Register the endpoints on the running server (jupyter_server's extension hook)."""
    # Typed as tornado's Application: jupyter_server's override of add_handlers is untyped.
    web_app: web.Application = serverapp.web_app
    base_url = web_app.settings["base_url"]
    base = url_path_join(base_url, "promoter")
    config = Promoter(parent=serverapp)
    state = _State(
        root=Path(serverapp.root_dir).expanduser().resolve(),
        config=config,
        runner=Runner(config.max_concurrent_runs, serverapp.log),
        services=Services(base_url, config.service_start_timeout),
    )
    _stop_on_shutdown(serverapp, state)
    arg = {"state": state}
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "inspect"), InspectHandler, arg),
            (url_path_join(base, "convert"), ConvertHandler, arg),
            (url_path_join(base, "roles"), RolesHandler, arg),
            (url_path_join(base, "jobs"), JobsHandler, arg),
            (url_path_join(base, "jobs", r"([^/]+)"), JobHandler, arg),
            (url_path_join(base, "services"), ServicesHandler, arg),
            (url_path_join(base, "services", r"([^/]+)"), ServiceHandler, arg),
            (url_path_join(base, "try", r"([^/]+)", r"(.*)"), TryProxyHandler, arg),
        ],
    )
    serverapp.log.info(
        "promoter: REST endpoints registered at %s (at most %d kernel runs at once)",
        base,
        config.max_concurrent_runs,
    )


def _stop_everything(state: _State) -> None:
    """Stop what the extension started: queued and running jobs, "Try it" services."""
    state.runner.shutdown()
    state.services.stop_all_now()


def _stop_on_shutdown(serverapp: ServerApp, state: _State) -> None:
    """Stop the extension's processes when the server stops.

    jupyter_server calls ``stop_extension`` on ``ExtensionApp`` extensions only, not on
    function-based ones like this, so the stop rides on ``cleanup_extensions`` (which every
    server shutdown awaits, pytest-jupyter's included) and, for an exit that skips it, atexit.
    """
    cleanup = serverapp.cleanup_extensions

    async def cleanup_extensions() -> None:
        _stop_everything(state)
        await cleanup()

    serverapp.cleanup_extensions = cleanup_extensions  # type: ignore[method-assign]
    atexit.register(_stop_everything, state)
