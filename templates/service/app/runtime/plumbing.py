"""Plumbing: the one ASGI middleware every HTTP request passes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import time
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.runtime.logs import RequestState, current_request, log_request
from app.runtime.metrics import Metrics
from app.runtime.settings import Settings

logger = logging.getLogger("app")

# Paths that answer without an API key: probes, metrics, and the documentation itself.
OPEN_PATHS = frozenset(
    {"/health", "/ready", "/metrics", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
)
DOCS_ASSETS = "/docs-assets"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# W3C trace context: version-traceid-parentid-flags; the trace id goes into the log lines.
_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
# Metric label values stay bounded: any other method (a client may make one up, and 401s are
# counted too) is one value, "<other>", as an unknown path is "<unmatched>".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BodyTooLarge(HTTPException):
    """A streamed request body went over the limit.

    An HTTPException, because FastAPI turns any other error raised while it reads the body
    into a 400; this one FastAPI's exception middleware answers with its 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class Plumbing:
    """Request id, API keys, body limit, one log line and metrics per HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.log_delay = settings.log_flush_seconds
        self.keys = [key.get_secret_value().encode() for key in settings.api_keys]
        self.metrics = metrics
        self.active = 0  # requests in flight (read by the gauge at scrape time)
        self._paths: set[str] | None = None
        metrics.in_flight.set_function(lambda: self.active)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state, declared, key = _read_headers(scope)
        token = current_request.set(state)
        status = 0  # until the response starts
        header = (b"x-request-id", state.request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        self.active += 1
        try:
            if self.keys and scope["path"] not in OPEN_PATHS and not self._allowed(key, scope):
                await _plain(send_with_id, 401, {"detail": "missing or wrong X-API-Key header"})
            elif declared is not None and declared.isdigit() and int(declared) > self.limit:
                await self._too_large(send_with_id)
            else:
                await self._call(scope, receive, send_with_id)
        except asyncio.CancelledError:  # the server's graceful shutdown ran out of time
            logger.warning("the request was cut by the server's shutdown")
            if status == 0:  # answered, so the client is not left with a plain-text 500
                body = {"detail": "the service is shutting down; retry"}
                await _plain(send_with_id, 503, body, retry_after=1)
        except Exception:
            state.error_id = os.urandom(16).hex()
            logger.exception("unhandled error (error id %s)", state.error_id)
            if status == 0:  # nothing sent yet (a started response keeps its status)
                body = {"detail": "internal error", "error_id": state.error_id}
                await _plain(send_with_id, 500, body)
        finally:
            self.active -= 1
            seconds = time.perf_counter() - start
            route = self._route(scope)
            status = status or 500
            method = scope["method"] if scope["method"] in _METHODS else "<other>"
            self.metrics.observe(method, route, status, seconds)
            log_request(
                scope["method"], route, scope["path"], status, seconds, state, self.log_delay
            )
            current_request.reset(token)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        limit = self.limit

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:  # raised outside FastAPI's exception middleware
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await _plain(send, 413, {"detail": f"request body over {self.limit} bytes"})

    def _allowed(self, key: bytes | None, scope: Scope) -> bool:
        if scope["path"].startswith(DOCS_ASSETS + "/"):
            return True
        if key is None:
            return False
        # Compare with every key, in constant time per key, without stopping at a match.
        matched = False
        for candidate in self.keys:
            matched |= secrets.compare_digest(key, candidate)
        return matched

    def _route(self, scope: Scope) -> str:
        """The route's path, so label values stay bounded (401 and 413 never reach the router)."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        if self._paths is None:
            routes = scope["app"].routes if "app" in scope else []
            self._paths = {getattr(route, "path", "") for route in routes}
        return scope["path"] if scope["path"] in self._paths else "<unmatched>"


def _read_headers(scope: Scope) -> tuple[RequestState, bytes | None, bytes | None]:
    """The request's state (its id, its trace id), declared body length and API key."""
    request_id = declared = key = trace = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            request_id = value.decode("latin-1")
        elif name == b"content-length":
            declared = value
        elif name == b"x-api-key":
            key = value
        elif name == b"traceparent":
            trace = _TRACEPARENT.fullmatch(value)
    if request_id is None or not _REQUEST_ID.fullmatch(request_id):
        request_id = os.urandom(16).hex()
    state = RequestState(request_id)
    if trace is not None and trace[1] != b"0" * 32:
        state.trace_id = trace[1].decode()
    return state, declared, key


async def _plain(
    send: Send, status: int, body: dict[str, Any], retry_after: int | None = None
) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
