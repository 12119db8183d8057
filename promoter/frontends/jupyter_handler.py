"""What the JupyterLab extension's endpoints share: permissions, path confinement, JSON errors."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from jupyter_core.paths import is_hidden
from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler

from promoter._exceptions import PromoterError, UsageError
from promoter.frontends.jupyter_runs import Runner, internal_error

if TYPE_CHECKING:
    from promoter.frontends.jupyter_services import Services

__all__ = ["PromoterHandler", "RequestError", "State"]


class RequestError(Exception):
    """A request refused before the library runs: an HTTP status and a ``PromoterError``."""

    def __init__(self, status: int, error: PromoterError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


@dataclass
class State:
    """What every handler receives: the root, the job queue, the services."""

    root: Path
    runner: Runner
    services: Services


class PromoterHandler(APIHandler):
    """What the endpoints share: permissions, body parsing, path confinement and JSON errors."""

    # The permissions a user needs, as (action, resource) pairs of jupyter_server's authorizer.
    # Inspecting runs the notebook, so it needs the rights "Run All" needs.
    permissions: ClassVar[tuple[tuple[str, str], ...]] = (
        ("read", "contents"),
        ("execute", "kernels"),
    )

    def initialize(self, state: State) -> None:
        """Receive the extension's shared state (tornado's handler-argument hook)."""
        self.state = state
        self.root = state.root

    async def _check_permissions(self) -> None:
        for action, resource in self.permissions:
            allowed = await ensure_async(
                self.authorizer.is_authorized(self, self.current_user, action, resource)
            )
            if not allowed:
                raise RequestError(
                    403, UsageError(f"you are not allowed to {action} {resource} on this server")
                )

    def _body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise RequestError(400, UsageError(f"the request body is not JSON: {exc}")) from exc
        except RecursionError as exc:
            raise RequestError(
                400, UsageError("the request body nests too deeply to be read")
            ) from exc
        if not isinstance(body, dict):
            raise RequestError(400, UsageError("the request body must be a JSON object"))
        return body

    async def _resolve(self, api_path: object, field: str) -> Path:
        """Turn an API path into a real path, refusing anything that leaves the root.

        ``resolve()`` follows symlinks, so a link inside the root that points outside it is
        caught by the same containment check as ``../``. Hidden paths are refused as the
        contents API refuses them (unless the server's contents manager allows hidden files).
        """
        if not isinstance(api_path, str) or not api_path.strip():
            raise RequestError(400, UsageError(f'"{field}" must be a non-empty string'))
        if "\x00" in api_path:
            raise RequestError(400, UsageError(f'"{field}" contains a NUL character'))
        if PurePosixPath(api_path).is_absolute() or Path(api_path).is_absolute():
            raise RequestError(
                400,
                UsageError(
                    f'"{field}" must be relative to the server root, not absolute: {api_path}'
                ),
            )
        resolved = (self.root / api_path).resolve()
        if not resolved.is_relative_to(self.root):
            raise RequestError(
                403, UsageError(f'"{field}" is outside the server root directory: {api_path}')
            )
        if await self._hidden(api_path, resolved):
            raise RequestError(
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
        except RequestError as exc:
            self._error_reply(exc.status, exc.error)
        except UsageError as exc:
            self._error_reply(400, exc)
        except PromoterError as exc:
            self._error_reply(422, exc)
        except Exception as exc:
            # A bug, not a user error: the traceback goes to the server log, the browser gets
            # the same JSON shape as every other error.
            self.log.exception("promoter: %s failed", self.request.path)
            self._reply(500, internal_error(exc))
        else:
            self._reply(status, data)
