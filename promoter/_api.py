"""The library API: ``inspect`` a notebook, ``convert`` notebooks into a service.

Both run the pipeline stages in order; the CLI and the JupyterLab extension only call these.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promoter._exceptions import ContractError, Location, PromoterError, UsageError
from promoter.analysis.bounds import unbounded_sizes
from promoter.analysis.datamaps import data_keyed
from promoter.analysis.extract import Dropped, Extraction, extract
from promoter.analysis.files import DataFile, data_files
from promoter.analysis.isolation import isolate
from promoter.analysis.localmodules import local_module_imports
from promoter.analysis.parameters import (
    RequestSchema,
    infer_request,
    request_error,
    request_json_schema,
)
from promoter.analysis.response import ResponseSchema, infer_response
from promoter.reading.notebook import Notebook, Role, read_notebook
from promoter.reading.source import ResponseExpression, response_expression

if TYPE_CHECKING:  # importing these at run time would import papermill and jinja2 (slow)
    from promoter.building.proof import Step
    from promoter.building.render import NotebookPlan
    from promoter.building.verify import Fidelity
    from promoter.running.execute import Execution, ProgressCallback

__all__ = ["Conversion", "Finding", "Inspection", "convert", "inspect"]


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
        expression: The response cell's value expression (read once, used by every stage).
        response: The response schema (``None`` when the notebook was not executed).
        execution: The papermill run (``None`` when not executed).
        warnings: Everything worth a look before promoting.
        papermill_types: papermill's own inference per parameter (its baseline), when run.
        files: The data files that travel with the service (found when run).
        workdir: The pipeline's working folder in the service (``notebooks`` for a notebook
            in ``notebooks/`` reading ``../data``; ``.`` when it reads only under its folder).
        example_runs: The papermill runs of ``metadata.promoter.examples``, in order.
    """

    notebook: Notebook
    request: RequestSchema
    extraction: Extraction
    expression: ResponseExpression
    response: ResponseSchema | None = None
    execution: Execution | None = None
    warnings: tuple[Finding, ...] = ()
    papermill_types: dict[str, str] = field(default_factory=dict)
    files: tuple[DataFile, ...] = ()
    workdir: str = "."
    example_runs: tuple[Execution, ...] = ()

    @property
    def kernel_seconds(self) -> float | None:
        """Time spent in papermill runs (defaults and examples), ``None`` when not executed."""
        if self.execution is None:
            return None
        return self.execution.seconds + sum(r.seconds for r in self.example_runs)

    @property
    def dropped(self) -> tuple[Dropped, ...]:
        """Statements not promoted (magics, display-only lines, unused imports)."""
        return self.extraction.dropped

    def execute(
        self,
        *,
        timeout: float | None = 600,
        on_progress: ProgressCallback | None = None,
        all_cells: bool = False,
    ) -> Inspection:
        """Run the promoted cells with papermill, infer the response schema, find data files.

        The notebook runs with its defaults, then once per parameter set in
        ``metadata.promoter.examples``; the response schema is merged from every answer.

        Args:
            timeout: Seconds any one cell may run.
            on_progress: Called with (notebook, cells done, cells in all) while it runs.
            all_cells: Run every cell, ``skip`` cells and those after ``response`` too.

        Returns:
            This inspection, completed with the run, the response schema and their warnings.

        Raises:
            PromoterError: A cell failed, the answer cannot become JSON, or a data file cannot
                travel; names cell and line.
        """
        notebook = self.notebook
        self._check_examples()
        execution, *runs = self._runs(timeout, on_progress, all_cells)
        observed = execution.files
        for run in runs:  # files only other parameters read
            observed = observed.merged(run.files)
        files, file_warnings, workdir = data_files(notebook, observed)
        modules = local_module_imports([f.source for f in files], self.extraction.modules)
        extraction = replace(self.extraction, modules=modules)
        response, found = self._response(execution, runs)
        return replace(
            self,
            request=self.request.with_defaults(execution.parameters),
            response=response,
            execution=execution,
            warnings=(
                *self.warnings,
                *(Finding(m, loc) for m, loc in (*found, *file_warnings)),
            ),
            papermill_types=_papermill_types(notebook),
            files=files,
            workdir=workdir,
            extraction=extraction,
            example_runs=tuple(runs),
        )

    def _response(
        self, execution: Execution, runs: list[Execution]
    ) -> tuple[ResponseSchema, list[tuple[str, Location]]]:
        """The response schema from the answers, the objects the code keys by data as maps."""
        notebook = self.notebook
        return infer_response(
            execution.response,
            execution.kind,
            notebook.class_prefix,
            self.expression.annotation,
            notebook.at(notebook.response_cell),
            examples=[r.response for r in runs],
            maps=notebook.settings.maps,
            records=notebook.settings.records,
            data_keyed=data_keyed(
                [b.code for b in (*self.extraction.setup, *self.extraction.handler)],
                self.extraction.response,
            ),
        )

    def _check_examples(self) -> None:
        """Refuse an example the service's request model would reject (before any kernel)."""
        notebook = self.notebook
        for index, example in enumerate(notebook.settings.examples):
            problem = request_error(self.request, example)
            if problem is not None:
                names = [p.name for p in self.request.parameters]
                raise ContractError(
                    f"metadata.promoter.examples[{index}] is not a valid request: {problem}",
                    location=notebook.at(notebook.parameters_cell),
                    hint=f"each example sets some of the parameters {names}, with their types",
                )

    def _runs(
        self, timeout: float | None, on_progress: ProgressCallback | None, all_cells: bool
    ) -> list[Execution]:
        """The run with the defaults, then those of ``metadata.promoter.examples``."""
        from promoter.running.execute import execute

        names = [p.name for p in self.request.parameters]
        runs = [
            execute(
                self.notebook,
                self.expression,
                names,
                timeout=timeout,
                on_progress=on_progress,
                all_cells=all_cells,
            )
        ]
        for index, example in enumerate(self.notebook.settings.examples):
            try:
                run = execute(
                    self.notebook,
                    self.expression,
                    names,
                    example,
                    timeout=timeout,
                    on_progress=on_progress,
                    all_cells=all_cells,
                )
            except PromoterError as exc:
                exc.message = f"with metadata.promoter.examples[{index}]: {exc.message}"
                raise
            runs.append(run)
        return runs

    def generated_runs(
        self, count: int, timeout: float | None = 600
    ) -> list[tuple[dict[str, Any], Any]]:
        """Run the notebook with ``count`` request bodies generated from its request model.

        Returns:
            ``(body, answer)`` per body the notebook answered (one it fails on is left out:
            there is nothing to compare the service with).
        """
        from promoter.building.samples import generated_requests
        from promoter.running.execute import execute

        known = [{}, *self.notebook.settings.examples]
        bodies = generated_requests(request_json_schema(self.request), count * 3, known)
        # Only what the service's own model accepts (a constraint the schema cannot say).
        bodies = [b for b in bodies if request_error(self.request, b) is None][:count]
        names = [p.name for p in self.request.parameters]
        runs = []
        for body in bodies:
            try:
                run = execute(self.notebook, self.expression, names, body, timeout=timeout)
            except PromoterError:
                continue
            runs.append((body, run.response))
        return runs

    def plan(self) -> NotebookPlan:
        """What the templates need to render this notebook's route (after ``execute``)."""
        from promoter.building.render import NotebookPlan

        if self.response is None:
            raise UsageError("the notebook was inspected without running it; execute it first")
        runs = [r for r in (self.execution, *self.example_runs) if r is not None]
        return NotebookPlan(
            self.notebook,
            self.request,
            self.response,
            self.extraction,
            files=self.files,
            workdir=self.workdir,
            imported=tuple(sorted({m for run in runs for m in run.modules})),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the inspection as JSON-compatible data (``inspect --json``, REST API)."""
        nb = self.notebook
        seconds = self.kernel_seconds
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
                    # A default that is not a literal, as written (its value needs a run).
                    "default_source": p.default_source,
                    "description": p.description,
                    "required": False,
                    "papermill_type": self.papermill_types.get(p.name),
                }
                for p in self.request.parameters
            ],
            "request_schema": request_json_schema(self.request),
            "response_schema": self.response.json_schema if self.response else None,
            "response_type": self.response.root if self.response else None,
            "response_shapes": [d.to_dict() for d in self.response.shapes] if self.response else [],
            "sample_response": self.response.sample if self.response else None,
            "example_responses": list(self.response.samples[1:]) if self.response else [],
            "warnings": [w.to_dict() for w in self.warnings],
            "dropped": [d.to_dict() for d in self.dropped],
            "files": [f.path for f in self.files],
            "kernel_seconds": None if seconds is None else round(seconds, 3),
        }


@dataclass(frozen=True)
class Conversion:
    """The result of ``convert``: where the service is and what went into it.

    Attributes:
        out_dir: The service folder.
        files: Generated files, relative to ``out_dir``.
        inspections: One per notebook, in order.
        fidelity: How each notebook's service answer compares with the notebook's, by stem.
        backup: The previous folder, kept because ``force`` overwrote edited files.
        kernel_seconds: Time spent executing notebooks (the rest is static work).
        seconds: Total time.
        fidelity_warnings: What the non-determinism rule found (``_determinism.judge``).
    """

    out_dir: Path
    files: tuple[str, ...]
    inspections: tuple[Inspection, ...]
    fidelity: dict[str, Fidelity]
    backup: Path | None
    kernel_seconds: float
    seconds: float
    fidelity_warnings: tuple[Finding, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def data_files(self) -> list[str]:
        """The data files copied into the service (relative to ``out_dir``), sorted."""
        return sorted({f.path for i in self.inspections for f in i.files})

    @property
    def routes(self) -> list[str]:
        """The service's POST routes."""
        return [i.notebook.route for i in self.inspections]

    @property
    def reproduces(self) -> bool:
        """Whether every route answers exactly what its notebook answered."""
        return all(f.matches for f in self.fidelity.values())

    @property
    def warnings(self) -> list[Finding]:
        """Warnings from every notebook, then what the non-determinism rule found."""
        return [*(w for i in self.inspections for w in i.warnings), *self.fidelity_warnings]

    def to_dict(self) -> dict[str, Any]:
        """Return the conversion as JSON-compatible data.

        ``fidelity`` maps each notebook stem to ``null`` when the service reproduces the
        notebook's answer, else to where the answers first differ.
        """
        return {
            "out_dir": str(self.out_dir),
            "files": list(self.files),
            "data_files": self.data_files,
            "routes": self.routes,
            "warnings": [w.to_dict() for w in self.warnings],
            "dropped": [d.to_dict() for i in self.inspections for d in i.dropped],
            "fidelity": {stem: f.difference for stem, f in self.fidelity.items()},
            "proof": [step.to_dict() for step in self.steps],
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
            Without it, only static facts are reported (``Inspection.execute`` runs it later).
        timeout: Seconds any one cell may run.
        on_progress: Called with (notebook, cells done, cells in all) while it runs.

    Raises:
        PromoterError: The notebook cannot be promoted; the error names cell and line.
    """
    notebook = read_notebook(path)
    request = infer_request(notebook)
    expression = response_expression(notebook)
    extraction = extract(notebook, request, expression)
    isolation = isolate(notebook, extraction, [p.name for p in request.parameters])
    extraction = replace(
        extraction,
        copied=isolation.copied,
        serialised=isolation.serialised,
        restored=isolation.restored,
        closes_figures=isolation.closes_figures,
        rebind=tuple(n for n in extraction.rebind if n not in isolation.declared_global),
    )
    warnings = [
        Finding(m, loc)
        for m, loc in (
            *notebook.warnings,
            *request.warnings,
            *unbounded_sizes(notebook, request),
            *isolation.findings,
        )
    ]
    warnings += _role_warnings(notebook)
    static = Inspection(notebook, request, extraction, expression, warnings=tuple(warnings))
    return static.execute(timeout=timeout, on_progress=on_progress) if execute else static


def convert(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    force: bool = False,
    k8s: bool = False,
    name: str | None = None,
    timeout: float | None = 600,
    on_progress: ProgressCallback | None = None,
    strict: bool = False,
    isolated: bool = True,
    generated: int = 2,
) -> Conversion:
    """Generate a FastAPI service from one or more notebooks (one route each).

    Args:
        paths: The notebooks.
        out_dir: The service folder (created, or regenerated in place).
        force: Overwrite generated files the user edited (the old folder is kept as a backup).
        k8s: Also write Kubernetes manifests.
        name: The service (distribution and image) name; default from the notebook.
        timeout: Seconds any one notebook cell may run.
        on_progress: Called with (notebook, cells done, cells in all) while kernels run.
        strict: Fail when a notebook's answer changes from run to run with the same
            parameters (by default a warning, and its golden test checks the shape only).
        isolated: Prove the service in a fresh environment built from its own pins alone
            (and ship its ``requirements.lock``); ``False`` proves it in this environment.
        generated: Request bodies generated from each request model (Hypothesis) the
            service must answer as the notebook does (each costs one papermill run).

    Raises:
        PromoterError: A notebook cannot be promoted, or the folder cannot be written safely.
    """
    from promoter.building.build import build_service, service_options
    from promoter.building.output import check_destination

    begin = time.perf_counter()
    _check_arguments(paths, name)
    out = Path(out_dir)
    _check_working_folder()
    check_destination(out, force=force)  # before any notebook runs
    inspections = [inspect(p, timeout=timeout, on_progress=on_progress) for p in paths]
    notebooks = [i.notebook for i in inspections]
    _check_routes(notebooks)
    options = service_options(notebooks, out, k8s=k8s, name=name)
    plans = [_plan(i, generated, timeout) for i in inspections]
    build = build_service(
        plans, options, out, force=force, cell_timeout=timeout, strict=strict, isolated=isolated
    )
    return Conversion(
        build.out_dir,
        build.files,
        tuple(inspections),
        build.fidelity,
        build.backup,
        sum(i.kernel_seconds or 0.0 for i in inspections),
        time.perf_counter() - begin,
        tuple(Finding(m, loc) for m, loc in build.warnings),
        build.steps,
    )


def _plan(inspection: Inspection, generated: int, timeout: float | None) -> NotebookPlan:
    """The inspection's plan, with ``generated`` request bodies the notebook answered."""
    return replace(
        inspection.plan(), generated=tuple(inspection.generated_runs(generated, timeout))
    )


def _check_arguments(paths: Sequence[str | Path], name: str | None) -> None:
    if not paths:
        raise UsageError("no notebook given", hint="promoter convert NOTEBOOK... -o FOLDER")
    if name is not None and not re.fullmatch(r"[a-z][a-z0-9\-]{0,62}", name):
        raise UsageError(
            f"invalid service name {name!r}",
            hint="use lower-case letters, digits and dashes, e.g. churn-score",
        )


def _check_working_folder() -> None:
    """Refuse to run in a working folder that was deleted (``-o .`` regenerated it)."""
    try:
        Path.cwd()
    except FileNotFoundError:
        raise UsageError(
            "the working folder no longer exists: regenerating a service in place (-o .) "
            "replaces its folder, so a shell inside it is left in the old, deleted one",
            hint='enter the folder again (cd "$PWD") and rerun',
        ) from None


def _check_routes(notebooks: list[Notebook]) -> None:
    seen: dict[str, Path] = {}
    stems: set[str] = set()
    for notebook in notebooks:
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
    from papermill.translators import papermill_translators

    from promoter.running.execute import quiet_papermill

    cell = notebook.node.cells[notebook.parameters_cell.index]
    try:
        translator = papermill_translators.find_translator("python3", "python")
        with quiet_papermill():  # "Unable to parse line 2" for what its parser does not read
            found = translator.inspect(cell)
    except Exception:  # papermill's parser is best-effort; ours is authoritative
        return {}
    return {p.name: p.inferred_type_name for p in found}


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | set | frozenset):
        return [_json_default(v) for v in value]
    return value
