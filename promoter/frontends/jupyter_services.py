"""The "Try it" services of the JupyterLab extension, and the endpoints that start and reach them.

A generated service runs under uvicorn, started by the Jupyter server; the browser reaches it
only through ``TryProxyHandler``, behind Jupyter's auth.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join
from tornado import httpclient, web

from promoter._exceptions import PromoterError, UsageError
from promoter.frontends.jupyter_handler import PromoterHandler, RequestError
from promoter.frontends.jupyter_runs import kill_tree

__all__ = ["Service", "ServiceHandler", "Services", "ServicesHandler", "TryProxyHandler"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        port = free_port()
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
                kill_tree(service.process.pid)
        return True

    def stop_all_now(self) -> None:
        """Kill every service at once (the server is stopping; no loop to wait on)."""
        for service in self.running.values():
            if service.process.returncode is None:
                kill_tree(service.process.pid)
        self.running.clear()
        if self._logs is not None:
            shutil.rmtree(self._logs, ignore_errors=True)
            self._logs = None


class ServicesHandler(PromoterHandler):
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


class ServiceHandler(PromoterHandler):
    """``DELETE promoter/services/<name>``: stop a "Try it" service."""

    @web.authenticated
    async def delete(self, name: str) -> None:
        """Stop the service (404 when none runs under that name)."""

        async def stop() -> tuple[int, dict[str, Any]]:
            if not await self.state.services.stop(name):
                raise RequestError(404, UsageError(f"no running service named {name}"))
            return 200, {"name": name, "stopped": True}

        await self._handle(stop)


class TryProxyHandler(PromoterHandler):
    """``promoter/try/<name>/<path>``: a request to a "Try it" service, behind Jupyter's auth.

    Only the body, the query and the content headers are forwarded; Jupyter's own cookies and
    token stay on this side.
    """

    _FORWARDED = ("Content-Type", "Accept", "X-Request-ID")
    _RETURNED = ("Retry-After", "X-Request-ID", "Location")

    async def _proxy(self, name: str, path: str) -> None:
        try:
            await self._check_permissions()
        except RequestError as exc:
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
