"""The library API: ``inspect`` a notebook, ``convert`` notebooks into a service.

Both run the pipeline stages in order; the CLI and the JupyterLab extension only call these.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promoter._exceptions import Location, UsageError
from promoter._extract import Dropped, Extraction, extract
from promoter._notebook import Notebook, Role, read_notebook
from promoter._parameters import RequestSchema, infer_request, request_json_schema
from promoter._response import ResponseSchema, infer_response

if TYPE_CHECKING:  # importing _execute at run time would import papermill (slow)
    from promoter._execute import Execution
    from promoter._render import NotebookPlan, ServiceOptions

__all__ = ["Conversion", "Inspection", "convert", "inspect"]

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Finding:
    """A warning with the place it refers to."""

    message: str
    location: Location

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as JSON-compatible data."""
        return {"message": self.message, **self.location.to_dict()}

    def __str__(self) -> str:
        where = str(self.location)
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Inspection:
    """What promoter sees in a notebook: roles, request fields, response schema, warnings.

    Attributes:
        notebook: The validated notebook with cell roles.
        request: The request fields.
        extraction: The setup and handler code the service would run.
        response: The response schema (``None`` when the notebook was not executed).
        execution: The papermill run (``None`` when not executed).
        warnings: Everything worth a look before promoting.
        papermill_types: papermill's own inference per parameter (its baseline), when run.
    """

    notebook: Notebook
    request: RequestSchema
    extraction: Extraction
    response: ResponseSchema | None = None
    execution: Execution | None = None
    warnings: tuple[Finding, ...] = ()
    papermill_types: dict[str, str] = field(default_factory=dict)

    @property
    def dropped(self) -> tuple[Dropped, ...]:
        """Statements not promoted (magics, display-only lines, unused imports)."""
        return self.extraction.dropped

    def to_dict(self) -> dict[str, Any]:
        """Return the inspection as JSON-compatible data (``inspect --json``, REST API)."""
        nb = self.notebook
        return {
            "notebook": str(nb.path),
            "route": nb.route,
            "summary": nb.summary,
            "description": nb.description,
            "cells": [
                {"index": c.index, "id": c.id, "role": c.role.value, "source_preview": c.preview()}
                for c in nb.cells
            ],
            "parameters": [
                {
                    "name": p.name,
                    "type": p.annotation,
                    "default": _json_default(p.default),
                    "description": p.description,
                    "required": False,
                    "papermill_type": self.papermill_types.get(p.name),
                }
                for p in self.request.parameters
            ],
            "request_schema": request_json_schema(self.request),
            "response_schema": self.response.json_schema if self.response else None,
            "response_type": self.response.root if self.response else None,
            "sample_response": self.response.sample if self.response else None,
            "warnings": [w.to_dict() for w in self.warnings],
            "dropped": [d.to_dict() for d in self.dropped],
            "kernel_seconds": round(self.execution.seconds, 3) if self.execution else None,
        }


@dataclass(frozen=True)
class Conversion:
    """The result of ``convert``: where the service is and what went into it.

    Attributes:
        out_dir: The service folder.
        files: Generated files, relative to ``out_dir``.
        inspections: One per notebook, in order.
        fidelity: Notebook stem -> ``None`` when the service reproduces the notebook's answer,
            else where the answers first differ.
        backup: The previous folder, kept because ``force`` overwrote edited files.
        kernel_seconds: Time spent executing notebooks (the rest is static work).
        seconds: Total time.
    """

    out_dir: Path
    files: tuple[str, ...]
    inspections: tuple[Inspection, ...]
    fidelity: dict[str, str | None]
    backup: Path | None
    kernel_seconds: float
    seconds: float

    @property
    def routes(self) -> list[str]:
        """The service's POST routes."""
        return [i.notebook.route for i in self.inspections]

    @property
    def warnings(self) -> list[Finding]:
        """Warnings from every notebook, then fidelity differences."""
        found = [w for i in self.inspections for w in i.warnings]
        for inspection in self.inspections:
            difference = self.fidelity.get(inspection.notebook.stem)
            if difference:
                found.append(
                    Finding(
                        f"the service's answer differs from the notebook's ({difference}); "
                        "the notebook is not deterministic, so the golden test checks the "
                        "shape only",
                        inspection.notebook.at(inspection.notebook.response_cell),
                    )
                )
        return found

    def to_dict(self) -> dict[str, Any]:
        """Return the conversion as JSON-compatible data."""
        return {
            "out_dir": str(self.out_dir),
            "files": list(self.files),
            "routes": self.routes,
            "warnings": [w.to_dict() for w in self.warnings],
            "dropped": [d.to_dict() for i in self.inspections for d in i.dropped],
            "fidelity": self.fidelity,
            "backup": str(self.backup) if self.backup else None,
            "kernel_seconds": round(self.kernel_seconds, 3),
            "seconds": round(self.seconds, 3),
        }


def inspect(
    path: str | Path,
    *,
    execute: bool = True,
    timeout: float | None = 600,
    on_progress: ProgressCallback | None = None,
) -> Inspection:
    """Read a notebook and infer its service: roles, request fields, response schema.

    Args:
        path: The notebook.
        execute: Run the notebook with papermill to infer the response schema (a few seconds).
            Without it, only static facts are reported.
        timeout: Seconds any one cell may run.
        on_progress: Called with (notebook name, cells done, cells in all) while it runs.

    Raises:
        PromoterError: The notebook cannot be promoted; the error names cell and line.
    """
    notebook = read_notebook(path)
    request = infer_request(notebook)
    extraction = extract(notebook, request)
    warnings = [Finding(m, loc) for m, loc in (*notebook.warnings, *request.warnings)]
    warnings += _role_warnings(notebook)
    if not execute:
        return Inspection(notebook, request, extraction, warnings=tuple(warnings))
    from promoter._execute import execute as run_notebook
    from promoter._render import class_prefix
    from promoter._source import response_expression

    names = [p.name for p in request.parameters]
    progress = None
    if on_progress is not None:
        progress = _named(on_progress, notebook.path.name)
    execution = run_notebook(notebook, names, timeout=timeout, on_progress=progress)
    request = request.with_defaults(execution.parameters)
    _, _, annotation = response_expression(notebook, notebook.response_cell)
    response, response_warnings = infer_response(
        execution.response,
        execution.kind,
        class_prefix(notebook.stem),
        annotation,
        notebook.at(notebook.response_cell),
    )
    warnings += [Finding(m, loc) for m, loc in response_warnings]
    return Inspection(
        notebook,
        request,
        extraction,
        response,
        execution,
        tuple(warnings),
        _papermill_types(notebook),
    )


def _named(callback: ProgressCallback, name: str) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        callback(name, done, total)

    return progress


def convert(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    force: bool = False,
    k8s: bool = False,
    name: str | None = None,
    timeout: float | None = 600,
    on_progress: ProgressCallback | None = None,
) -> Conversion:
    """Generate a FastAPI service from one or more notebooks (one route each).

    Args:
        paths: The notebooks.
        out_dir: The service folder (created, or regenerated in place).
        force: Overwrite generated files the user edited (the old folder is kept as a backup).
        k8s: Also write Kubernetes manifests.
        name: The service (distribution and image) name; default from the notebook.
        timeout: Seconds any one notebook cell may run.
        on_progress: Called with (notebook name, cells done, cells in all) while kernels run.

    Raises:
        PromoterError: A notebook cannot be promoted, or the folder cannot be written safely.
    """
    from promoter._output import Lock, write_service
    from promoter._render import NotebookPlan, render_service

    begin = time.perf_counter()
    if not paths:
        raise UsageError("no notebook given", hint="promoter convert NOTEBOOK... -o FOLDER")
    if name is not None and not re.fullmatch(r"[a-z][a-z0-9\-]{0,62}", name):
        raise UsageError(
            f"invalid service name {name!r}",
            hint="use lower-case letters, digits and dashes, e.g. churn-score",
        )
    out = Path(out_dir)
    inspections = [inspect(p, timeout=timeout, on_progress=on_progress) for p in paths]
    _check_routes(inspections)
    plans = [NotebookPlan(i.notebook, i.request, _response(i), i.extraction) for i in inspections]
    options = _options(inspections, out, k8s)
    if name is not None:
        options = replace(options, name=name)
    fidelity: dict[str, str | None] = {}

    def finish(build: Path) -> None:
        fidelity.update(_verify_and_format(build, plans, options))

    def lock_for(files: dict[str, str]) -> Lock:
        return Lock(
            promoter_version=_promoter_version(),
            notebooks=[
                {
                    "path": _relative(i.notebook.path, out),
                    "sha256": i.notebook.content_hash,
                    "route": i.notebook.route,
                }
                for i in inspections
            ],
            files=files,
        )

    files = render_service(plans, options)
    backup = write_service(out, files, lock_for, force=force, finish=finish)
    generated = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    kernel = sum(i.execution.seconds for i in inspections if i.execution)
    return Conversion(
        out.resolve(),
        tuple(generated),
        tuple(inspections),
        fidelity,
        backup,
        kernel,
        time.perf_counter() - begin,
    )


def _verify_and_format(
    build: Path, plans: list[NotebookPlan], options: ServiceOptions
) -> dict[str, str | None]:
    from promoter._render import format_python, render_service
    from promoter._verify import verify_service

    single = len(plans) == 1
    checks = verify_service(
        build,
        [
            (
                p.notebook,
                "app" if single else f"app.{p.notebook.stem}",
                p.response.model,
                p.response.sample,
            )
            for p in plans
        ],
    )
    fidelity = {c.slug: c.difference for c in checks}
    if any(not c.matches for c in checks):
        # Non-deterministic notebooks: the golden test can only check the answer's shape.
        replanned = [replace(p, golden=fidelity[p.notebook.stem] is None) for p in plans]
        rendered = render_service(replanned, options)
        (build / "tests/test_service.py").write_text(rendered["tests/test_service.py"], "utf-8")
    format_python(build)
    return fidelity


def _response(inspection: Inspection) -> ResponseSchema:
    assert inspection.response is not None  # convert always executes
    return inspection.response


def _check_routes(inspections: list[Inspection]) -> None:
    seen: dict[str, Path] = {}
    stems: set[str] = set()
    for inspection in inspections:
        notebook = inspection.notebook
        if notebook.route in seen:
            raise UsageError(
                f"{notebook.path} and {seen[notebook.route]} both serve {notebook.route}",
                hint="set metadata.promoter.route in one of them, or rename a notebook",
            )
        if notebook.stem in stems:
            raise UsageError(
                f"two notebooks are named {notebook.stem!r}",
                hint="rename one of them; each becomes a module of the service",
            )
        seen[notebook.route] = notebook.path
        stems.add(notebook.stem)


def _options(inspections: list[Inspection], out: Path, k8s: bool) -> ServiceOptions:
    from promoter._render import ServiceOptions

    first = inspections[0].notebook
    single = len(inspections) == 1
    slug = first.stem if single else out.resolve().name
    name = first.settings.name if single and first.settings.name else _dashed(slug)
    sources = " ".join(_quote(_relative(i.notebook.path, out)) for i in inspections)
    return ServiceOptions(
        name=name,
        title=(first.summary or slug.replace("_", " ").capitalize()) if single else name,
        description=(first.description or "")
        if single
        else "Routes: " + ", ".join(i.notebook.route for i in inspections),
        version=first.settings.version,
        command=f"promoter convert {sources} -o .",
        k8s=k8s,
    )


def _dashed(text: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "service"
    return name if name[0].isalpha() else f"svc-{name}"


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _relative(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path.resolve(), out.resolve())).as_posix()


def _promoter_version() -> str:
    from promoter import __version__

    return __version__


def _role_warnings(notebook: Notebook) -> list[Finding]:
    warnings = []
    for cell in notebook.with_role(Role.SETUP):
        if cell.index > notebook.parameters_cell.index and "setup" in cell.tags:
            warnings.append(
                Finding(
                    "a setup cell after the parameters cell runs at start-up, before any "
                    "request: it must not use the parameters",
                    notebook.at(cell),
                )
            )
    return warnings


def _papermill_types(notebook: Notebook) -> dict[str, str]:
    """papermill's own view of the parameters (its inspection is the baseline we extend)."""
    try:
        from papermill.inspection import _infer_parameters

        found = _infer_parameters(notebook.node, language="python")
    except Exception:  # papermill's parser is best-effort; ours is authoritative
        return {}
    return {p.name: p.inferred_type_name for p in found}


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | set | frozenset):
        return [_json_default(v) for v in value]
    return value
