"""The generated service's dependencies, pinned to the versions installed here.

The notebook ran in this environment and verification proves the service here, so these are
the versions known to work: each top-level module the promoted code imports is mapped to its
distribution and pinned with ``==``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["installed_version", "service_dependencies", "testing_dependencies"]

# celery and redis are pinned in every service though only SERVICE_JOBS_URL=redis://... uses
# them (~20 MB installed): the one image then runs the API in either mode and the workers
# (python -m app.worker), switched by a setting rather than a rebuild; the embedded mode
# never imports them.
_SERVICE_DEPS = (
    "celery",
    "fastapi",
    "fastapi-offline",
    "orjson",
    "pebble",
    "prometheus-client",
    "pydantic",
    "pydantic-settings",
    "redis",
    "uvicorn",
)
# httpx2 is what Starlette's TestClient wants now (it warns about plain httpx).
_TEST_DEPS = ("pytest", "httpx2", "ruff")
_UNKNOWN = "0+unknown"


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution``, or ``0+unknown``."""
    from importlib import metadata  # on use: its import is a fifth of ``promoter --help``

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return _UNKNOWN


def service_dependencies(modules: Iterable[str]) -> list[str]:
    """Pinned requirements of a service whose code imports the top-level ``modules``."""
    return _pins([*_SERVICE_DEPS, *_distributions(sorted(set(modules)))])


def testing_dependencies() -> list[str]:
    """Pinned requirements of the service's own test suite."""
    return _pins(list(_TEST_DEPS))


def _distributions(modules: list[str]) -> list[str]:
    if not modules:
        return []
    from importlib import metadata

    mapping = metadata.packages_distributions()
    found: list[str] = []
    for module in modules:
        for dist in mapping.get(module, []):
            if dist not in found:
                found.append(dist)
    return found


def _pins(distributions: list[str]) -> list[str]:
    pins = []
    for dist in distributions:
        version = installed_version(dist)
        pins.append(dist if version == _UNKNOWN else f"{dist}=={version}")
    return sorted(dict.fromkeys(pins), key=str.lower)
