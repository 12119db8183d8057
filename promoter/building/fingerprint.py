"""Run the service under test with a probe of its shared state (verification time only).

This file is never generated into a service: ``proof`` runs its source with the interpreter of
the service's own environment (``python -c <this file> FOLDER PORT``), so it imports only the
standard library and what every service has (FastAPI, uvicorn). It imports ``app.main`` as
uvicorn would, adds two routes the service does not have, and serves on 127.0.0.1:

- ``GET /__promoter__/state``: a digest of every piece of state requests share: each
  pipeline's module globals (the setup names), the data attributes of classes defined there,
  the module globals of the notebook's local modules (and of their classes), and the value of
  every zero-argument ``functools.lru_cache``/``cache`` function that has run. A handler that
  changes any of them shows here even when the answers stay equal.
- ``POST /__promoter__/trace/start`` then ``.../stop``: what the requests in between allocated
  and kept, by line of the generated pipelines (``tracemalloc``).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import pickle
import sys
import tracemalloc
import types
from pathlib import Path
from typing import Any

__all__ = ["digest", "shared_state"]

_FUNCTIONS = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    staticmethod,
    classmethod,
    property,
)
_DEPTH = 6
_MAX_ITEMS = 100_000


def digest(value: Any, depth: int = 0) -> str:
    """A digest of ``value``'s content, stable while it is unchanged (tables by their data)."""
    return hashlib.sha256(_content(value, depth)).hexdigest()[:16]


def _content(value: Any, depth: int) -> bytes:
    if isinstance(value, str | bytes | int | float | complex | bool | type(None)):
        return repr(value).encode()
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if name.startswith("pandas.") and hasattr(value, "to_numpy"):
        # A table's pickle changes when pandas reorganises its blocks for a read: its data.
        pandas: Any = sys.modules["pandas"]  # loaded: the value is one of its objects
        hashed = bytes(pandas.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
        labels = repr(getattr(value, "columns", getattr(value, "name", None))).encode()
        return hashed + labels
    if depth < _DEPTH and isinstance(value, dict) and len(value) <= _MAX_ITEMS:
        parts = [f"{k!r}={digest(v, depth + 1)}" for k, v in value.items()]
        return ("{" + ",".join(sorted(parts)) + "}").encode()
    if depth < _DEPTH and isinstance(value, list | tuple) and len(value) <= _MAX_ITEMS:
        return (name + "[" + ",".join(digest(v, depth + 1) for v in value) + "]").encode()
    try:
        return pickle.dumps(value, protocol=4)
    except Exception:
        # What cannot be pickled holds a resource (an HTTP client, a connection, a lock): its
        # pools and counters change with every use, which is not a request's data. It is
        # compared by identity: a request that replaces it is found; the static rules explain
        # attribute changes on it.
        return f"{name}@{id(value)}".encode()


def shared_state(folder: Path) -> dict[str, str]:
    """A digest per piece of shared state: ``module.name``, ``module.Class.attr``, ``f()``."""
    found: dict[str, str] = {}
    app = folder / "app"
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or not _inside(Path(path), folder):
            continue
        local = not _inside(Path(path), app)
        if local or name.endswith(".pipeline") or name == "app.pipeline":
            found.update(_module_state(name, module))
    return found


def _module_state(name: str, module: types.ModuleType) -> dict[str, str]:
    found: dict[str, str] = {}
    for attr, value in list(vars(module).items()):
        key = f"{name}.{attr}"
        if attr.startswith("__") or attr.startswith("promoter_"):
            continue
        if isinstance(value, types.ModuleType):
            continue
        if hasattr(value, "cache_info") and callable(value):
            cached = _cached(value)
            if cached is not None:
                found[key + "()"] = cached
        elif isinstance(value, type):
            if value.__module__ == name:
                found.update(_class_state(key, value))
        elif not isinstance(value, _FUNCTIONS):
            found[key] = _safe_digest(value)
    return found


def _class_state(key: str, cls: type) -> dict[str, str]:
    return {
        f"{key}.{attr}": _safe_digest(value)
        for attr, value in list(vars(cls).items())
        if not attr.startswith("__") and not isinstance(value, _FUNCTIONS)
    }


def _cached(function: Any) -> str | None:
    """The value a zero-argument cached function returns, once it has run (a cache hit)."""
    try:
        if function.cache_info().currsize == 0 or inspect.signature(function).parameters:
            return None
        return _safe_digest(function())
    except Exception:
        return None


def _safe_digest(value: Any) -> str:
    try:
        return digest(value)
    except Exception as exc:  # a value that cannot be read is not a difference
        return f"unreadable: {type(exc).__name__}"


def _inside(path: Path, folder: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(folder)
    except OSError:
        return False


def _trace(start: bool) -> list[dict[str, Any]]:
    """Start tracing allocations, or stop and return what stayed, by pipeline line."""
    global _before
    if start:
        tracemalloc.start(25)
        _before = tracemalloc.take_snapshot()
        return []
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown: dict[tuple[str, int], int] = {}
    for stat in after.compare_to(_before, "traceback"):
        frames = [f for f in stat.traceback if f.filename.endswith("pipeline.py")]
        if frames and stat.size_diff > 0:
            where = (frames[-1].filename, frames[-1].lineno)
            grown[where] = grown.get(where, 0) + stat.size_diff
    ranked = sorted(grown.items(), key=lambda item: -item[1])[:3]
    return [{"file": file, "line": line, "bytes": size} for (file, line), size in ranked]


_before: Any = None


def main() -> None:
    """Serve ``app.main:app`` from ``sys.argv[1]`` on ``sys.argv[2]``, with the probes."""
    folder, port = Path(os.path.realpath(sys.argv[1])), int(sys.argv[2])
    sys.path.insert(0, str(folder))
    os.chdir(folder)
    app = importlib.import_module("app.main").app
    app.add_api_route(
        "/__promoter__/state",
        lambda: shared_state(folder),
        methods=["GET"],
        include_in_schema=False,
    )
    probes = {"start": lambda: _trace(True), "stop": lambda: _trace(False)}
    for action, probe in probes.items():
        app.add_api_route(
            f"/__promoter__/trace/{action}", probe, methods=["POST"], include_in_schema=False
        )
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
