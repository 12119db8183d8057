"""The jupyter_server extension behind JupyterLab's "Promote" button.

Two REST endpoints under the server's ``base_url``, authenticated like every Jupyter API (token
or cookie plus XSRF) and confined to the server's root directory::

    POST promoter/inspect  {"path": "dir/nb.ipynb"}
        -> Inspection.to_dict()
    POST promoter/convert  {"path": "dir/nb.ipynb", "out_dir": "dir/nb_service", "force": false}
        -> Conversion.to_dict() plus "out_dir_path" and "readme" (paths relative to the root)

Paths in requests and in replies are API paths: relative to the root, ``/``-separated. Errors
answer JSON ``PromoterError.to_dict()``: 400 for a bad request, 403 for a path outside the root,
422 for a notebook that cannot be promoted (or an output folder that cannot be written).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from jupyter_core.utils import ensure_async, ensure_event_loop
from jupyter_server.base.handlers import APIHandler
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import url_path_join
from tornado import web

import promoter
from promoter._exceptions import PromoterError, UsageError

__all__ = ["_load_jupyter_server_extension"]

_T = TypeVar("_T")


async def _in_thread(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a blocking library call in a worker thread, off the server's event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(_isolated, func, *args, **kwargs))


def _isolated(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Call ``func`` in an empty context, then close the event loop papermill made for it.

    papermill runs its async client through jupyter_core's ``run_sync``, which keeps "this
    thread's loop" in a context variable. An empty context keeps the server's running loop
    out of reach (``asyncio.to_thread`` would copy it in: "This event loop is already
    running"), and closing the loop afterwards keeps pool threads from holding an open loop,
    and its sockets, until the server exits.
    """
    context = contextvars.Context()
    try:
        return context.run(func, *args, **kwargs)
    finally:
        context.run(_close_thread_loop)


def _close_thread_loop() -> None:
    ensure_event_loop().close()
    asyncio.set_event_loop(None)


class _RequestError(Exception):
    """A request refused before the library runs: an HTTP status and a ``PromoterError``."""

    def __init__(self, status: int, error: PromoterError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


class _PromoterHandler(APIHandler):
    """What both endpoints share: body parsing, path confinement and JSON errors."""

    # The permissions a user needs, as (action, resource) pairs of jupyter_server's authorizer.
    # Inspecting runs the notebook, so it needs the rights "Run All" needs.
    permissions: tuple[tuple[str, str], ...] = (("read", "contents"), ("execute", "kernels"))

    def initialize(self, root: Path) -> None:
        """Receive the server's resolved root directory (tornado's handler-argument hook)."""
        self.root = root

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
        if not isinstance(body, dict):
            raise _RequestError(400, UsageError("the request body must be a JSON object"))
        return body

    def _resolve(self, api_path: object, field: str) -> Path:
        """Turn an API path into a real path, refusing anything that leaves the root.

        ``resolve()`` follows symlinks, so a link inside the root that points outside it is
        caught by the same containment check as ``../``.
        """
        if not isinstance(api_path, str) or not api_path.strip():
            raise _RequestError(400, UsageError(f'"{field}" must be a non-empty string'))
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
        return resolved

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

    async def _handle(self) -> None:
        try:
            await self._check_permissions()
            data = await self._run(self._body())
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
            self._reply(
                500,
                {
                    "error": "InternalError",
                    "message": f"promoter failed unexpectedly: {type(exc).__name__}: {exc}",
                    "hint": "see the Jupyter server log for the traceback",
                },
            )
        else:
            self._reply(200, data)

    async def _run(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @web.authenticated
    async def post(self) -> None:
        """Answer one request (the library runs in a worker thread, off the event loop)."""
        await self._handle()


class InspectHandler(_PromoterHandler):
    """``POST promoter/inspect``: what the service would look like, without writing anything."""

    async def _run(self, body: dict[str, Any]) -> dict[str, Any]:
        notebook = self._resolve(body.get("path"), "path")
        inspection = await _in_thread(promoter.inspect, notebook)
        return inspection.to_dict()


class ConvertHandler(_PromoterHandler):
    """``POST promoter/convert``: write the service into a folder inside the root."""

    permissions = (*_PromoterHandler.permissions, ("write", "contents"))

    async def _run(self, body: dict[str, Any]) -> dict[str, Any]:
        notebook = self._resolve(body.get("path"), "path")
        raw_out = body.get("out_dir")
        if raw_out is None:
            # The default is resolved like an explicit path, so a `<stem>_service` symlink
            # that leads outside the root is refused (403) rather than followed.
            parent = self._api_path(notebook.parent)
            raw_out = PurePosixPath(parent, f"{notebook.stem}_service").as_posix()
        out_dir = self._resolve(raw_out, "out_dir")
        if out_dir == self.root:
            raise _RequestError(
                400, UsageError('"out_dir" must be a folder inside the server root, not the root')
            )
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise _RequestError(400, UsageError('"force" must be true or false'))
        conversion = await _in_thread(promoter.convert, [notebook], out_dir, force=force)
        data = conversion.to_dict()
        data["out_dir_path"] = self._api_path(out_dir)
        readme = out_dir / "README.md"
        data["readme"] = self._api_path(readme) if readme.is_file() else None
        return data


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    """Register the endpoints on the running server (jupyter_server's extension hook)."""
    # Typed as tornado's Application: jupyter_server's override of add_handlers is untyped.
    web_app: web.Application = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "promoter")
    root = {"root": Path(serverapp.root_dir).expanduser().resolve()}
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "inspect"), InspectHandler, root),
            (url_path_join(base, "convert"), ConvertHandler, root),
        ],
    )
    serverapp.log.info("promoter: REST endpoints registered at %s", base)
