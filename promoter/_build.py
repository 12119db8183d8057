"""The one build path: plans in, a verified, formatted, locked service folder out.

``convert`` and ``check``'s fidelity step both build through ``build_service``::

    render (all but the tests) -> write into a staging folder -> verify (fresh process)
        -> render the tests (golden where the answer reproduced) -> format -> lock -> swap in

Each template renders once; nothing reaches the destination unless every step succeeded.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from promoter._determinism import judge
from promoter._exceptions import Location
from promoter._notebook import Notebook
from promoter._output import Lock, staged
from promoter._render import (
    NotebookPlan,
    ServiceOptions,
    notebook_package,
    render_service,
    render_tests,
)
from promoter._verify import Fidelity, verify_service

__all__ = ["Build", "build_service", "format_python", "relative_path", "service_options"]


@dataclass(frozen=True)
class Build:
    """A service folder that was built, verified and swapped into place.

    Attributes:
        out_dir: The service folder (resolved).
        files: Every file in it, relative to ``out_dir``, sorted.
        fidelity: How each notebook's generated pipeline compares with the notebook, by stem.
        backup: The previous folder, kept because ``force`` overwrote edited files.
        warnings: What the non-determinism rule (``_determinism.judge``) found.
    """

    out_dir: Path
    files: tuple[str, ...]
    fidelity: dict[str, Fidelity]
    backup: Path | None
    warnings: tuple[tuple[str, Location], ...] = ()


def build_service(
    plans: list[NotebookPlan],
    options: ServiceOptions,
    out_dir: Path,
    *,
    force: bool = False,
    timeout: float = 600,
    strict: bool = False,
) -> Build:
    """Render, verify, format and lock the service of ``plans`` into ``out_dir``, atomically.

    Args:
        plans: One per notebook (one route each).
        options: Service-wide choices.
        out_dir: The service folder (created, or regenerated in place).
        force: Overwrite generated files the user edited (the old folder is kept as a backup).
        timeout: Seconds the verification of the generated code may take.
        strict: Fail when a notebook's answer changes from run to run (else a warning).

    Raises:
        VerificationError: The generated code fails where the notebook did not, its answer
            does not fit the response model, or (with ``strict``) it differs from the
            notebook's.
        EditedFileError: The user edited generated files and ``force`` is false.
        OutputError: ``out_dir`` is not a folder promoter generated, or cannot be written.
    """
    with staged(out_dir, force=force) as stage:
        stage.write(render_service(plans, options))
        fidelity = verify_service(
            stage.path,
            [_verification(p, len(plans)) for p in plans],
            timeout,
            examples={p.notebook.stem: _examples(p) for p in plans},
        )
        pairs = list(zip(plans, fidelity, strict=True))
        warnings = [w for p, f in pairs for w in judge(p.notebook, f, strict=strict)]
        golden = [replace(p, golden=f.matches) for p, f in pairs]
        stage.write(render_tests(golden, options))
        format_python(stage.path)
        backup = stage.commit(lambda files: _lock(plans, stage.out_dir, files))
    out = stage.out_dir
    generated = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    return Build(out, tuple(generated), {f.slug: f for f in fidelity}, backup, tuple(warnings))


def _verification(plan: NotebookPlan, count: int) -> tuple[Notebook, str, str, Any]:
    package = notebook_package(plan.notebook.stem, count == 1)
    return plan.notebook, package, plan.response.model, plan.response.sample


def _examples(plan: NotebookPlan) -> list[tuple[dict[str, Any], Any]]:
    """The example requests and the notebook's answers to them."""
    answers = plan.response.samples[1:]
    return list(zip(plan.notebook.settings.examples, answers, strict=False))


def _lock(plans: list[NotebookPlan], out_dir: Path, files: dict[str, str]) -> Lock:
    from promoter import __version__

    notebooks = [
        {
            "path": relative_path(p.notebook.path, out_dir),
            "sha256": p.notebook.content_hash,
            "route": p.notebook.route,
        }
        for p in plans
    ]
    return Lock(promoter_version=__version__, notebooks=notebooks, files=files)


def service_options(
    notebooks: list[Notebook], out: Path, *, k8s: bool = False, name: str | None = None
) -> ServiceOptions:
    """The service-wide choices for a service of ``notebooks`` written to ``out``.

    A one-notebook service takes its name, title and description from the notebook; a
    several-notebook one from its folder.
    """
    first = notebooks[0]
    single = len(notebooks) == 1
    slug = first.stem if single else out.resolve().name
    default_name = first.settings.name if single and first.settings.name else _dashed(slug)
    sources = " ".join(shlex.quote(relative_path(nb.path, out)) for nb in notebooks)
    return ServiceOptions(
        name=name or default_name,
        title=(first.summary or slug.replace("_", " ").capitalize()) if single else default_name,
        description=(first.description or "")
        if single
        else "Routes: " + ", ".join(nb.route for nb in notebooks),
        version=first.settings.version,
        command=f"promoter convert {sources} -o .",
        k8s=k8s,
    )


def _dashed(text: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "service"
    return name if name[0].isalpha() else f"svc-{name}"


def relative_path(path: Path, start: Path) -> str:
    """``path`` relative to the folder ``start``, ``/``-separated (``..`` where needed)."""
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def format_python(folder: Path) -> None:
    """Sort imports and format every Python file under ``folder`` with ruff."""
    files = [str(p) for p in folder.rglob("*.py")]
    if not files:
        return
    ruff = [sys.executable, "-m", "ruff"]
    config = (
        ["--config", str(folder / "pyproject.toml")] if (folder / "pyproject.toml").exists() else []
    )
    subprocess.run(
        [*ruff, "check", "--quiet", "--select", "I", "--fix", *config, *files],
        check=False,
        capture_output=True,
    )
    subprocess.run([*ruff, "format", "--quiet", *config, *files], check=False, capture_output=True)
