"""The generated service's dependencies, pinned to the versions installed here.

The notebook ran in this environment, so these are the versions known to work: each top-level
module the promoted code imports is mapped to its distribution and pinned with ``==``. What the
code names is not all it needs: a library loads optional backends lazily (pandas' ``xlrd`` or
``openpyxl`` for ``read_excel``, ``pyarrow``), and a pickle loads the modules of its classes
(scikit-learn under a joblib file). So the modules the notebook's run really loaded (its
kernel's ``sys.modules``) are pinned too, less the kernel's own machinery and what the named
distributions already require. The service is then proven in an environment built from these
pins alone (``environment``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import cache

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


def service_dependencies(
    modules: Iterable[str], imported: Iterable[str] = (), unused: Iterable[str] = ()
) -> list[str]:
    """Pinned requirements of a service whose code imports the top-level ``modules``.

    Args:
        modules: The top-level modules the promoted code names in its imports.
        imported: The top-level modules loaded while the notebook ran (its kernel's
            ``sys.modules``): those that are neither the kernel's nor already required by a
            named distribution are pinned as well.
        unused: Top-level modules only code the service drops imported (matplotlib for a
            plot): what their distributions bring is not pinned for having been loaded.
    """
    named = [*_SERVICE_DEPS, *_distributions(sorted(set(modules)))]
    loaded = _distributions(sorted(set(imported) - set(sys.stdlib_module_names)))
    covered = _closure(named) | _closure(_KERNEL)
    covered |= _closure(_distributions(sorted(set(unused) - set(modules))))
    # A loaded distribution another one requires comes with it (scipy with scikit-learn).
    covered |= _closure(r for d in loaded for r in _requires(d))
    return _pins([*named, *(d for d in loaded if _canonical(d) not in covered)])


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


#: What the kernel loads for itself (never the service's dependency unless the code names it).
_KERNEL = ("ipykernel", "ipython", "papermill", "nbclient")


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@cache
def _requires(distribution: str) -> tuple[str, ...]:
    """The distributions ``distribution`` requires here (markers for this interpreter)."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        lines = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return ()
    found = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is None or marker.evaluate({"extra": ""}):
            found.append(requirement.name)
    return tuple(found)


def _closure(distributions: Iterable[str]) -> set[str]:
    """``distributions`` and every distribution they require, transitively (canonical names)."""
    seen: set[str] = set()
    todo = list(distributions)
    while todo:
        name = todo.pop()
        if _canonical(name) in seen:
            continue
        seen.add(_canonical(name))
        todo.extend(_requires(name))
    return seen


def _pins(distributions: list[str]) -> list[str]:
    pins = []
    for dist in distributions:
        version = installed_version(dist)
        pins.append(dist if version == _UNKNOWN else f"{dist}=={version}")
    return sorted(dict.fromkeys(pins), key=str.lower)
