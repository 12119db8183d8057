"""The "Try it" services of the JupyterLab extension, and the endpoints that start and reach them.

A generated service runs under uvicorn, started by the Jupyter server; the browser reaches it
only through ``TryProxyHandler``, behind Jupyter's auth.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from jupyter_server.utils import url_path_join
from tornado import web

from promoter._exceptions import PromoterError, UsageError
from promoter.frontends.jupyter_handler import PromoterHandler, RequestError
from promoter.frontends.jupyter_runs import kill_tree

__all__ = ["Service", "ServiceHandler", "Services", "ServicesHandler", "TryProxyHandler"]


@dataclass
class Service:
    """A generated service this server started: uvicorn on a Unix socket only it can reach."""

    name: str
    out_dir: str
    socket: Path
    host: str
    process: asyncio.subprocess.Process
    log: Path
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        # httpx, not tornado's client: tornado raises "Broken pipe" when the service answers
        # (a 404, say) before it has read the body; httpcore reads that answer.
        # No kept-alive connections: nothing stays open for a shutdown without a loop to close.
        no_pool = httpx.Limits(max_keepalive_connections=0)
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket), limits=no_pool)
        self.client = httpx.AsyncClient(transport=transport, timeout=300)

    def url(self, path: str) -> str:
        """The URL of ``path`` on the service (its host is the name the service accepts)."""
        return f"http://{self.host}/{path}"

    def alive(self) -> bool:
        """Whether uvicorn still runs (asyncio learns of an exit a moment after the kernel)."""
        if self.process.returncode is not None:
            return False
        try:
            return bool(psutil.Process(self.process.pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    def to_dict(self) -> dict[str, Any]:
        """Where the browser reaches it: through the Jupyter server, behind its auth.

        ``url`` and ``docs`` are relative to the server's base URL, as the browser's own
        ``ServerConnection`` settings join them.
        """
        url = f"promoter/try/{self.name}/"
        return {"name": self.name, "out_dir": self.out_dir, "url": url, "docs": url + "docs"}


class Services:
    """The running "Try it" services, by name; stopped on request and on server shutdown.

    Each listens on a Unix socket in a folder made for this server (mode 0700): no other
    local user, and no web page, can reach it except through the proxy and Jupyter's auth.
    """

    def __init__(self, base_url: str, start_timeout: float) -> None:
        self.base_url = base_url
        self.start_timeout = start_timeout
        self.running: dict[str, Service] = {}
        self._folder: Path | None = None

    @staticmethod
    def name_for(out_dir: str) -> str:
        """A URL-safe name for a service folder (its API path, ``/`` made ``-``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", out_dir).strip("-.") or "service"

    async def live(self, name: str) -> Service | None:
        """The service running under ``name``; one that died is dropped from the list."""
        service = self.running.get(name)
        if service is not None and not service.alive():
            await self._forget(name)
            return None
        return service

    async def listing(self) -> list[Service]:
        """The services alive now (the dead ones dropped)."""
        return [s for s in [await self.live(name) for name in list(self.running)] if s is not None]

    async def start(self, folder: Path, out_dir: str) -> Service:
        """Start (or restart) the service in ``folder``; answer once ``/ready`` says so."""
        name = self.name_for(out_dir)
        await self.stop(name)
        if self._folder is None:
            # mkdtemp makes the folder 0700: only this server's user may reach the sockets.
            self._folder = Path(tempfile.mkdtemp(prefix="promoter-try-"))
        token = secrets.token_hex(8)
        # A short name: a Unix socket path must fit in about 100 bytes.
        sock, log = self._folder / f"{token}.sock", self._folder / f"{token}.log"
        host = f"{token}.promoter-try.invalid"
        root_path = url_path_join(self.base_url, "promoter", "try", name)
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "uvicorn", "promoter.frontends.jupyter_try:app"),
                *("--uds", str(sock), "--app-dir", str(folder)),
                # /docs then asks for <root_path>/openapi.json: through the proxy.
                *("--root-path", root_path, "--no-server-header"),
                cwd=folder,
                env={**os.environ, "PROMOTER_TRY_HOST": host},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        service = Service(name, out_dir, sock, host, process, log)
        self.running[name] = service
        try:
            await self._wait_ready(service)
        except PromoterError:
            await self.stop(name)
            raise
        return service

    async def _wait_ready(self, service: Service) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if service.process.returncode is not None:
                raise UsageError(
                    f"the service in {service.out_dir} exited with {service.process.returncode}"
                    f": {self._tail(service)}",
                    hint="run its tests (pytest in the service folder) to see why",
                )
            with contextlib.suppress(httpx.TransportError):
                response = await service.client.get(service.url("ready"), timeout=2)
                if response.status_code == 200:
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

    async def _forget(self, name: str) -> Service | None:
        service = self.running.pop(name, None)
        if service is not None:
            await service.client.aclose()
            service.socket.unlink(missing_ok=True)
        return service

    async def stop(self, name: str) -> bool:
        """Stop a service; ``False`` when none runs under that name."""
        service = await self._forget(name)
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
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


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
            running = [s.to_dict() for s in await services.listing()]
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


# Adds Jupyter's XSRF token to the page's same-origin requests that change state.
_XSRF_PATCH = """(() => {
  const token = TOKEN, send = window.fetch.bind(window);
  window.fetch = (input, init = {}) => {
    const method = (init.method || (input instanceof Request && input.method) || "GET");
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    if (url.origin === location.origin && !/^(GET|HEAD|OPTIONS)$/i.test(method)) {
      const headers = new Headers(init.headers || (input instanceof Request ? input.headers : {}));
      headers.set("X-XSRFToken", token);
      init = { ...init, headers };
    }
    return send(input, init);
  };
})();"""
_GONE = "has stopped; start it again with Try it"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


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
        if name not in self.state.services.running:
            self._error_reply(404, UsageError(f"no running service named {name}"))
            return
        service = await self.state.services.live(name)
        if service is None:  # it died: never forward to whatever took its place
            self._error_reply(502, UsageError(f"the service {name} {_GONE}"))
            return
        # tornado hands the path over decoded: encode it again, so a NUL, a space or a "?"
        # reaches the service as the browser sent it, not as raw bytes or a query.
        url = service.url(urllib.parse.quote(path, safe="/"))
        if self.request.query:
            url += f"?{self.request.query}"
        method = self.request.method or "GET"
        headers = {h: self.request.headers[h] for h in self._FORWARDED if h in self.request.headers}
        has_body = method in ("POST", "PUT", "PATCH")
        try:
            response = await service.client.request(
                method, url, headers=headers, content=self.request.body if has_body else None
            )
        except httpx.TransportError:  # no HTTP answer at all
            gone = await self.state.services.live(name) is None
            why = _GONE if gone else "did not answer"
            self._error_reply(502, UsageError(f"the service {name} {why}"))
            return
        self.set_status(response.status_code)
        for header in self._RETURNED:
            if header in response.headers:
                self.set_header(header, response.headers[header])
        # APIHandler.finish would label every answer JSON; /docs is HTML.
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        body = response.content
        if content_type.startswith("text/html"):
            body = self._docs_page(name, body.decode(errors="replace")).encode()
        self.finish(body, set_content_type=content_type)

    def _docs_page(self, name: str, html: str) -> str:
        """The service's HTML page (``/docs``, ``/redoc``), made to work behind Jupyter.

        Jupyter's API policy (``default-src 'none'``) would block Swagger UI's scripts: the
        page gets a policy of its own that allows the service's assets (its path on this
        server) and the page's own inline scripts (by hash), nothing else. And the requests
        the page sends ("Try it out" -> "Execute") carry Jupyter's XSRF token, as
        JupyterLab's own requests do, so the cookie session lets them through.
        """
        root = url_path_join(self.base_url, "promoter", "try", name)
        # The generated page names its favicon from the service's root, not its root path.
        html = html.replace('href="/docs-assets/', f'href="{root}/docs-assets/')
        xsrf = json.dumps(self.xsrf_token.decode())
        patch = _XSRF_PATCH.replace("TOKEN", xsrf)
        html = html.replace("<head>", f"<head><script>{patch}</script>", 1)
        hashes = " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()}'"
            for code in _INLINE_SCRIPT.findall(html)
        )
        own = f"{self.request.host}{root}/"
        self.set_header(
            "Content-Security-Policy",
            f"default-src 'none'; script-src {own} {hashes}; style-src {own} 'unsafe-inline'; "
            f"img-src {own} data:; font-src {own}; connect-src {own}; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
        )
        return html

    @web.authenticated
    async def get(self, name: str, path: str) -> None:
        """Forward a GET (``/docs``, ``/openapi.json``, ``/health``)."""
        await self._proxy(name, path)

    @web.authenticated
    async def post(self, name: str, path: str) -> None:
        """Forward a POST (the notebook's route)."""
        await self._proxy(name, path)
