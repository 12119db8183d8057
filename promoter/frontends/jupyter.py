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
    *      promoter/try/<name>/... -> proxied to that service (on a Unix socket)

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
import json
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from jupyter_core.utils import ensure_async
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

import promoter
from promoter._exceptions import PromoterError, UsageError
from promoter.frontends.jupyter_handler import PromoterHandler, RequestError, State
from promoter.frontends.jupyter_runs import Job, Runner, in_thread
from promoter.frontends.jupyter_services import (
    ServiceHandler,
    Services,
    ServicesHandler,
    TryProxyHandler,
)

__all__ = ["Promoter", "_load_jupyter_server_extension"]


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


class _RunHandler(PromoterHandler):
    """What the kernel-run endpoints share: request checks and the job as the browser sees it."""

    async def _run_request(self, action: str, body: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        """Validate an inspect/convert request; answer the worker's request and the notebook."""
        notebook = await self._resolve(body.get("path"), "path")
        if action in ("inspect", "convert") and not notebook.is_file():
            raise UsageError(f"no such notebook: {body['path']}", hint="check the path")
        if action == "inspect":
            return {"path": str(notebook)}, notebook
        if action != "convert":
            raise RequestError(400, UsageError('"action" must be "inspect" or "convert"'))
        raw_out = body.get("out_dir")
        if raw_out is None:
            # The default is resolved like an explicit path, so a `<stem>_service` symlink
            # that leads outside the root is refused (403) rather than followed.
            parent = self._api_path(notebook.parent)
            raw_out = PurePosixPath(parent, f"{notebook.stem}_service").as_posix()
        out_dir = await self._resolve(raw_out, "out_dir")
        if out_dir == self.root:
            raise RequestError(
                400, UsageError('"out_dir" must be a folder inside the server root, not the root')
            )
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise RequestError(400, UsageError('"force" must be true or false'))
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
            raise RequestError(404, UsageError(f"no such job: {job_id}"))
        return job


class _DirectRunHandler(_RunHandler):
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
    permissions = (*PromoterHandler.permissions, ("write", "contents"))


class JobsHandler(_RunHandler):
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
                raise RequestError(403, UsageError("you are not allowed to write contents"))
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


class JobHandler(_RunHandler):
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


class RolesHandler(PromoterHandler):
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
            return 200, await in_thread(self._inspect, notebook, notebook)
        if not isinstance(content, dict):
            raise RequestError(400, UsageError('"content" must be a notebook (a JSON object)'))
        with tempfile.TemporaryDirectory(prefix="promoter-roles-") as tmp:
            copy = Path(tmp) / notebook.name
            copy.write_text(json.dumps(content), encoding="utf-8")
            return 200, await in_thread(self._inspect, copy, notebook)

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


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    """Register the endpoints on the running server (jupyter_server's extension hook)."""
    # Typed as tornado's Application: jupyter_server's override of add_handlers is untyped.
    web_app: web.Application = serverapp.web_app
    base_url = web_app.settings["base_url"]
    base = url_path_join(base_url, "promoter")
    config = Promoter(parent=serverapp)
    state = State(
        root=Path(serverapp.root_dir).expanduser().resolve(),
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


def _stop_everything(state: State) -> None:
    """Stop what the extension started: queued and running jobs, "Try it" services."""
    state.runner.shutdown()
    state.services.stop_all_now()


def _stop_on_shutdown(serverapp: ServerApp, state: State) -> None:
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
