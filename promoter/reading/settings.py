"""``metadata.promoter``: the notebook-level settings, validated with a clear error each.

All are optional (DESIGN.md section 1): route, service name, version, timeout, job timeout,
execution mode, data files, limits, examples, response maps and records, and state shared on
purpose.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promoter._exceptions import ContractError, Location

__all__ = ["JSON_PATH", "Settings", "read_settings"]

_ROUTE = re.compile(r"/[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*")
_NAME = re.compile(r"[a-z][a-z0-9\-]*")
_VERSION = re.compile(r"[0-9A-Za-z.\-+]+")
_SHARED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_SETTINGS = {
    "route",
    "name",
    "version",
    "timeout",
    "job_timeout",
    "execution",
    "shared",
    "examples",
    "maps",
    "records",
    "files",
    "max_file_mb",
    "max_output_mb",
    "root",
}
#: A JSON path into the response: ``$``, then ``.key``, ``["any key"]``, ``[*]`` (list items) or
#: ``.*`` (the values of a map), e.g. ``$.by_state``, ``$.rows[*].scores``.
JSON_PATH = re.compile(r'\$(\.[A-Za-z_][A-Za-z0-9_]*|\[\*\]|\.\*|\["(?:[^"\\]|\\.)*"\])*')
_EXECUTION_MODES = ("thread", "inline", "process")


@dataclass(frozen=True)
class Settings:
    """Notebook-level settings from ``metadata.promoter`` (all optional)."""

    route: str | None = None
    name: str | None = None
    version: str = "0.1.0"
    timeout: float = 30.0
    #: Seconds a job of the route (``POST /<route>/jobs``) may run before it is stopped.
    job_timeout: float = 3600.0
    #: "thread" (default): each request runs in a worker thread under the timeout.
    #: "inline": on the event loop, for handlers that take microseconds; no timeout then.
    #: "process": in worker processes (pebble) that are killed past the timeout.
    execution: str = "thread"
    #: Globs (relative to the notebook's folder) of data files that travel with the service
    #: besides those the default run was seen reading (files only other parameters read).
    files: tuple[str, ...] = ()
    #: The largest data file that may travel with the service, in megabytes.
    max_file_mb: float = 200.0
    #: The most output (prints, displays, tracebacks) a run of the notebook may produce, in
    #: megabytes (millions of characters): a cell printing without end is stopped there.
    max_output_mb: float = 50.0
    #: Parameter sets run besides the defaults to infer the response schema (and the OpenAPI
    #: request examples).
    examples: tuple[dict[str, Any], ...] = ()
    #: JSON paths of response objects to read as maps (``dict[str, T]``) / as records (models).
    maps: tuple[str, ...] = ()
    records: tuple[str, ...] = ()
    #: Setup names (or modules, e.g. "random") that requests share on purpose: promoter
    #: neither copies them per request nor refuses handlers that change them.
    shared: tuple[str, ...] = ()
    #: The project root, relative to the notebook's folder (``".."``): files under it travel
    #: with the service in the same layout. Default: the nearest folder above the notebook
    #: holding ``.git``, ``pyproject.toml`` or ``setup.cfg``.
    root: str | None = None


def read_settings(path: Path, node: Any) -> Settings:
    """The settings in ``metadata.promoter`` of the notebook ``node`` read from ``path``."""
    raw = node.metadata.get("promoter", {})
    where = Location(notebook=path)
    if not isinstance(raw, dict):
        raise ContractError(
            "metadata.promoter must be an object", location=where, hint="see DESIGN.md section 1"
        )
    unknown = set(raw) - _SETTINGS
    if unknown:
        raise ContractError(
            f"unknown keys in metadata.promoter: {sorted(unknown)}",
            location=where,
            hint=f"known keys: {sorted(_SETTINGS)}",
        )
    route, name = _route_and_name(raw, where)
    version = raw.get("version", "0.1.0")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ContractError(
            f"metadata.promoter.version {version!r} is not a valid version",
            location=where,
            hint="use a version like 1.2.0",
        )
    execution = raw.get("execution", "thread")
    if execution not in _EXECUTION_MODES:
        raise ContractError(
            f"metadata.promoter.execution {execution!r} is not one of {list(_EXECUTION_MODES)}",
            location=where,
            hint='"thread" (the default) enforces the timeout; "inline" is for microsecond code; '
            '"process" runs the code in worker processes that a timeout kills',
        )
    return Settings(
        route=route,
        name=name,
        version=version,
        timeout=_seconds(raw, "timeout", 30.0, where),
        job_timeout=_seconds(raw, "job_timeout", 3600.0, where),
        execution=execution,
        files=_file_globs(raw.get("files", []), where),
        max_file_mb=_megabytes(raw, "max_file_mb", 200.0, where),
        max_output_mb=_megabytes(raw, "max_output_mb", 50.0, where),
        examples=_examples(raw.get("examples", []), where),
        maps=_json_paths(raw, "maps", where),
        records=_json_paths(raw, "records", where),
        shared=_shared(raw.get("shared", []), where),
        root=_root(raw.get("root"), where),
    )


def _root(root: Any, where: Location) -> str | None:
    if root is None:
        return None
    if not isinstance(root, str) or not root.strip() or Path(root).is_absolute():
        raise ContractError(
            f"metadata.promoter.root {root!r} must be a folder relative to the notebook's",
            location=where,
            hint='e.g. "root": ".." for a notebook in notebooks/ of its project',
        )
    return root


def _route_and_name(raw: dict[str, Any], where: Location) -> tuple[str | None, str | None]:
    route = raw.get("route")
    if route is not None and (not isinstance(route, str) or not _ROUTE.fullmatch(route)):
        raise ContractError(
            f"metadata.promoter.route {route!r} is not a valid route",
            location=where,
            hint="use a path like /churn_score (letters, digits, _ and -)",
        )
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise ContractError(
            f"metadata.promoter.name {name!r} is not a valid service name",
            location=where,
            hint="use lower-case letters, digits and dashes, e.g. churn-score",
        )
    return route, name


def _file_globs(globs: Any, where: Location) -> tuple[str, ...]:
    example = '["data/*.csv", "models/**/*.joblib"], relative to the notebook\'s folder'
    found = _strings(globs, "files", "glob strings", lambda g: bool(g.strip()), where, example)
    for glob in found:
        if glob.startswith(("/", "\\")) or ".." in Path(glob).parts:
            raise ContractError(
                f"metadata.promoter.files glob {glob!r} leaves the notebook's folder",
                location=where,
                hint="only files under the notebook's folder travel with the service; read "
                "others from a mounted volume or object storage",
            )
    return found


def _seconds(raw: dict[str, Any], key: str, fallback: float, where: Location) -> float:
    seconds = raw.get(key, fallback)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ContractError(
            f"metadata.promoter.{key} {seconds!r} must be a positive number of seconds",
            location=where,
        )
    return float(seconds)


def _megabytes(raw: dict[str, Any], key: str, fallback: float, where: Location) -> float:
    limit = raw.get(key, fallback)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int | float)
        or not math.isfinite(limit)
        or limit <= 0
    ):
        raise ContractError(
            f"metadata.promoter.{key} {limit!r} must be a positive number of megabytes",
            location=where,
        )
    return float(limit)


def _examples(raw: Any, where: Location) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list) or not all(
        isinstance(e, dict) and all(isinstance(k, str) for k in e) for e in raw
    ):
        raise ContractError(
            "metadata.promoter.examples must be a list of parameter sets (JSON objects)",
            location=where,
            hint='e.g. "examples": [{"state": "CA"}, {"state": "NY", "top_k": 5}]',
        )
    return tuple(dict(e) for e in raw)


def _json_paths(raw: dict[str, Any], key: str, where: Location) -> tuple[str, ...]:
    example = '["$", "$.counts", "$.rows[*].scores", "$.by_state.*"]'
    paths = raw.get(key, [])
    return _strings(paths, key, "JSON paths into the response", JSON_PATH.fullmatch, where, example)


def _shared(shared: object, where: Location) -> tuple[str, ...]:
    example = '["cache"]: the setup names requests share on purpose'
    return _strings(shared, "shared", "names", _SHARED.fullmatch, where, example)


def _strings(
    value: object,
    key: str,
    what: str,
    accept: Callable[[str], object],
    where: Location,
    example: str,
) -> tuple[str, ...]:
    """A ``metadata.promoter`` setting that must be a list of strings ``accept`` takes."""
    if not isinstance(value, list) or not all(isinstance(v, str) and accept(v) for v in value):
        raise ContractError(
            f"metadata.promoter.{key} {value!r} must be a list of {what}",
            location=where,
            hint=f"e.g. {example}",
        )
    return tuple(value)
