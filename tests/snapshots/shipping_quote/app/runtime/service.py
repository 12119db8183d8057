"""The service: the FastAPI app, its operations routes, the setup cells and the runners."""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from app.jobs import Jobs
from app.runtime.capacity import cpu_limit
from app.runtime.errors import invalid_request
from app.runtime.logs import configure_logging, flush_logs
from app.runtime.metrics import Metrics
from app.runtime.plumbing import DOCS_ASSETS, OPEN_PATHS, Plumbing
from app.runtime.runner import Runner
from app.runtime.settings import Settings, unknown_settings
from app.runtime.slots import Slots
from app.runtime.workers import process_pool

logger = logging.getLogger("app")


class Version(BaseModel):
    """GET /version."""

    service: str
    version: str
    promoter: str
    notebooks: dict[str, str] = Field(description="Source notebook -> its sha256.")


@dataclass
class Service:
    """One generated service: settings, the app, and the runners of its routes."""

    name: str
    version: str
    promoter_version: str
    notebooks: dict[str, str]
    setups: Sequence[Callable[[], Any]]
    settings: Settings = field(default_factory=lambda: Settings())
    ready: bool = False
    setup_error: str | None = None
    runners: list[Runner] = field(default_factory=list)

    def __post_init__(self) -> None:
        configure_logging(self.settings)
        self.metrics = Metrics()
        self.slots = Slots(
            self.settings.concurrency,
            self.settings.queue_timeout,
            self.settings.wedged_grace or 0.0,  # else the longest route timeout, see runner()
            self.metrics,
            queue=self.settings.queue_length,
        )
        self.threads = concurrent.futures.ThreadPoolExecutor(
            self.settings.concurrency, thread_name_prefix="notebook"
        )
        self._processes: Any = None
        self.jobs = Jobs(self.name)  # the job form of the routes (app/jobs, DESIGN.md 3b)
        self.jobs.blocked = lambda: self.setup_error

    def runner(
        self,
        route: str,
        run: Callable[[Any], Any],
        *,
        execution: Literal["inline", "thread", "process"],
        timeout: float,
    ) -> Runner:
        """The callable that answers ``route`` (its timeout may come from the settings)."""
        runner = Runner(self, route, run, execution, self.settings.timeout_for(route, timeout))
        self.runners.append(runner)
        if self.settings.wedged_grace is None and execution != "inline":
            self.slots.grace = max(self.slots.grace, runner.timeout)
        return runner

    def processes(self) -> Any:
        """The pebble pool, made after setup so forked workers start with its state."""
        if self._processes is None:
            self._processes = process_pool(self.settings.concurrency)
        return self._processes

    def create_app(self, *, title: str, description: str) -> FastAPI:
        """The FastAPI app with the operations routes and the plumbing middleware."""
        from fastapi_offline import FastAPIOffline

        app = FastAPIOffline(
            title=title,
            version=self.version,
            description=description,
            lifespan=self._lifespan,
            static_url=DOCS_ASSETS,
            docs_url=None,  # its pages write the title into the HTML unescaped: ours below
            redoc_url=None,
        )
        add_docs_pages(app)
        app.add_middleware(Plumbing, settings=self.settings, metrics=self.metrics)
        app.add_exception_handler(RequestValidationError, invalid_request)
        if self.settings.cors_origins:
            app.add_middleware(
                CORSMiddleware,
                allow_origins=self.settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["*"],
                expose_headers=["X-Request-ID"],
            )
        app.add_api_route("/health", self.health, methods=["GET"], tags=["operations"])
        app.add_api_route("/ready", self.ready_probe, methods=["GET"], tags=["operations"])
        app.add_api_route("/version", self.version_info, methods=["GET"], tags=["operations"])
        app.add_api_route("/metrics", self.metrics_text, methods=["GET"], include_in_schema=False)
        if self.settings.api_keys:
            declare_api_key(app)
        return app

    async def health(self) -> JSONResponse:
        """Liveness: 503 when the setup cells failed or the slots are wedged (see ``slots``)."""
        if self.setup_error is not None:
            return JSONResponse({"status": "setup failed", "error_id": self.setup_error}, 503)
        if self.slots.wedged():
            return self._wedged()
        return JSONResponse({"status": "ok"})

    async def ready_probe(self) -> JSONResponse:
        """Readiness: the setup cells have run and the slots are not wedged (else 503)."""
        if self.setup_error is not None:
            return JSONResponse({"status": "setup failed", "error_id": self.setup_error}, 503)
        if not self.ready:
            return JSONResponse({"status": "starting"}, 503)
        if self.slots.wedged():  # no new traffic while the orchestrator restarts the pod
            return self._wedged()
        return JSONResponse({"status": "ready"})

    def _wedged(self) -> JSONResponse:
        slots = self.slots
        body = {
            "status": "wedged",
            "busy": slots.busy,
            "timed_out_running": slots.timed_out_running,
        }
        return JSONResponse(body, 503)

    async def version_info(self) -> Version:
        """The service's version, the promoter that generated it, and its notebooks' hashes."""
        return Version(
            service=self.name,
            version=self.version,
            promoter=self.promoter_version,
            notebooks=self.notebooks,
        )

    async def metrics_text(self) -> Response:
        """Prometheus metrics (text format)."""
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    def _log_capacity(self) -> None:
        """Say at start-up how many requests run at once, and where the number comes from."""
        slots = self.slots
        if "concurrency" in self.settings.model_fields_set:
            source = "SERVICE_CONCURRENCY"
        else:
            _, limit = cpu_limit()
            source = f"{limit} + 4, at most 32; SERVICE_CONCURRENCY overrides"
        logger.info(
            "%d slots per worker process (%s); at most %d requests wait, up to %g s; "
            "wedged after %g s with every slot busy and none finishing in time",
            slots.size,
            source,
            slots.queue,
            slots.wait,
            slots.grace,
            extra={"concurrency": slots.size, "queue_length": slots.queue},
        )

    async def _setup(self) -> None:
        try:
            for setup in self.setups:
                if inspect.iscoroutinefunction(setup):
                    await setup()  # top-level `await`: on the loop the requests run on
                else:
                    await asyncio.to_thread(setup)  # /health answers while a model loads
        except Exception:
            self.setup_error = os.urandom(16).hex()
            logger.exception("setup failed (error id %s)", self.setup_error)
            return
        if any(r.execution == "process" for r in self.runners):
            await asyncio.to_thread(self.processes)
        await asyncio.to_thread(self.jobs.start)  # the job workers fork with the setup's state
        self.ready = True
        logger.info("ready")

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Run the setup (in a thread, or on the loop when async): /health answers meanwhile."""
        limit_memory(self.settings.max_memory_mb)  # before the setup: a model counts too
        if not self.settings.api_keys:
            logger.warning("API-key auth is off: set SERVICE_API_KEYS to require X-API-Key")
        for problem in unknown_settings():
            logger.warning(problem)
        self._log_capacity()
        # The router tries routes in order (~3 us each): the notebook routes go first.
        mine = {runner.route for runner in self.runners}
        app.router.routes.sort(key=lambda route: getattr(route, "path", None) not in mine)
        setup = asyncio.create_task(self._setup())
        yield
        await setup
        await asyncio.to_thread(self.jobs.stop)
        flush_logs()
        if self._processes is not None:
            self._processes.stop()
            self._processes.join(timeout=10)
        self.threads.shutdown(wait=False, cancel_futures=True)


def declare_api_key(app: FastAPI) -> None:
    """Tell the OpenAPI schema (and the docs' Authorize button) about the X-API-Key header."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {
                "APIKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            }
            for path, operations in schema.get("paths", {}).items():
                if path not in OPEN_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"APIKey": []}]
        return app.openapi_schema or schema

    app.openapi = openapi  # type: ignore[method-assign]


def limit_memory(megabytes: int | None) -> None:
    """Bound this process's address space (``RLIMIT_AS``; worker processes inherit it).

    An allocation past it raises ``MemoryError`` (answered with 507) instead of the kernel's
    OOM killer ending the process and every request it holds. Where the platform has no such
    limit, a warning says so.
    """
    if megabytes is None:
        return
    try:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        wanted = megabytes * 1024 * 1024
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ImportError, AttributeError, ValueError, OSError) as error:
        logger.warning("SERVICE_MAX_MEMORY_MB is not applied on this platform: %s", error)
        return
    logger.info("address space limited to %d MiB per process", soft // (1024 * 1024))


def add_docs_pages(app: FastAPI) -> None:
    """/docs and /redoc from the local assets, the title escaped as HTML text.

    The title is the notebook's first heading: FastAPI writes it into ``<title>`` as it is, so
    ``</title><script>`` would run in the page (which stays open even with API keys). ReDoc
    also renders the description with ``untrusted-spec``: its HTML is sanitised.
    """
    from fastapi.openapi.docs import (
        get_redoc_html,
        get_swagger_ui_html,
        get_swagger_ui_oauth2_redirect_html,
    )

    title = html.escape(app.title)
    favicon = f"{DOCS_ASSETS}/favicon.png"
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=redirect,
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=favicon,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            with_google_fonts=False,
            redoc_favicon_url=favicon,
        )
        body = bytes(page.body).replace(b"<redoc ", b"<redoc untrusted-spec ", 1)
        return HTMLResponse(body)

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route(redirect, swagger_redirect, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
