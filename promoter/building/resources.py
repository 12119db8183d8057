"""Files promoter ships besides its code: the service templates and the shared JSON converter.

They load the same way from a source checkout (``templates/`` at the repository root) and from
an installed wheel (``promoter/templates``, force-included at build time).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["jobs_sources", "jsonable_source", "runtime_source", "template_dir"]


def template_dir() -> Path:
    """The templates folder: inside the installed wheel, or at the root of a source checkout."""
    package = Path(__file__).parents[1]
    packaged = package / "templates"
    if packaged.is_dir():
        return packaged
    return package.parent / "templates"


def jsonable_source() -> str:
    """The source of the JSON converter shared by the kernel capture and the service."""
    return (template_dir() / "service" / "app" / "jsonable.py").read_text(encoding="utf-8")


def runtime_source() -> str:
    """The source of the service's plumbing module, shipped verbatim into every service."""
    return (template_dir() / "service" / "app" / "runtime.py").read_text(encoding="utf-8")


def jobs_sources() -> dict[str, str]:
    """The job machinery (``app/jobs/``, ``app/worker.py``), shipped verbatim into every service.

    Keyed by POSIX path relative to the service folder.
    """
    service = template_dir() / "service"
    paths = [*sorted((service / "app" / "jobs").glob("*.py")), service / "app" / "worker.py"]
    return {p.relative_to(service).as_posix(): p.read_text(encoding="utf-8") for p in paths}
