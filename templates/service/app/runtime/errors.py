"""Error answers: the documented statuses, the JSON error body, and 422 that never fails."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from app.runtime.logs import current_request

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The request body cannot be decoded (FastAPI: not UTF-8 text)."},
    401: {"description": "API keys are configured and `X-API-Key` is missing or wrong."},
    413: {"description": "The request body is larger than SERVICE_MAX_BODY_BYTES."},
    500: {"description": "The notebook code failed; the body has an `error_id` for the logs."},
    503: {
        "description": "The service is starting, or every slot is busy and no slot can be "
        "expected within SERVICE_QUEUE_TIMEOUT seconds (the wait queue holds at most "
        "SERVICE_QUEUE_LENGTH requests): retry after `Retry-After` seconds."
    },
    504: {"description": "The notebook code ran past the route's timeout."},
    507: {
        "description": "The request needs more memory than the service may use "
        "(MemoryError; SERVICE_MAX_MEMORY_MB); the body has an `error_id`."
    },
}


def error_response(
    status: int, detail: str, *, retry_after: int | None = None, error_id: str | None = None
) -> Response:
    """The JSON error answer; its error id goes into the request's log line too."""
    content: dict[str, Any] = {"detail": detail}
    if error_id is not None:
        content["error_id"] = error_id
        state = current_request.get()
        if state is not None:
            state.error_id = error_id  # the request's log line carries it too
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    return JSONResponse(content, status, headers)


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with the field paths, always as JSON.

    FastAPI's own handler echoes each bad input, and fails (a 500) on one JSON cannot carry:
    ``NaN``, ``Infinity``, ``1e400`` or a lone surrogate. Such an input is shown by its repr.
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "type": error.get("type"),
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg"),
            "input": _json_safe(error.get("input")),
        }
        for error in errors
    ]
    return JSONResponse({"detail": detail}, 422)


#: An echoed input nested deeper than this is not echoed: near the recursion limit it may
#: pass the check below and still fail when the response is rendered, deeper in the stack.
_ECHO_DEPTH = 64


def _json_safe(value: Any) -> Any:
    if _deeper_than(value, _ECHO_DEPTH):
        return f"<input nested deeper than {_ECHO_DEPTH} levels>"
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        return repr(value)
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists/dicts in ``value`` nest deeper than ``limit`` (no recursion: a loop)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return False
