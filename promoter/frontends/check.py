"""``promoter check``: prove in CI that notebooks still promote, run, and match their services.

Four checks per notebook, each a JUnit test case and a column of the summary:

    contract  the notebook reads, its tags follow the contract, parameters and response parse
    execute   papermill runs it with its defaults; request and response models are inferred
    fidelity  the service built from it (the same build as ``convert``) returns what the
              executed notebook returned: the same non-determinism rule as ``convert``
              (``_determinism.judge``: a changing answer warns, and fails with ``strict``)
    drift     every generated service whose ``promoter.lock.json`` names this notebook was
              generated from this exact file by this promoter version

Notebooks run in parallel worker processes (``_pool``), each notebook's kernel a subprocess of
its worker; the results, including each executed notebook for HTML reports, come back to the
caller. The module is pure library code: ``_reports`` formats its results, the CLI and the
pytest plugin show them.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promoter._exceptions import Location, PromoterError, UsageError
from promoter.frontends.discover import (
    ServiceIndex,
    find_notebooks,
    find_services,
    git_root,
    has_promoter_tags,
)
from promoter.reading.locate import cell_file_line

if TYPE_CHECKING:
    from promoter._api import Inspection
    from promoter.building.output import Lock
    from promoter.building.proof import ProofOptions
    from promoter.running.execute import ProgressCallback

__all__ = [
    "CHECKS",
    "CheckReport",
    "NotebookResult",
    "Outcome",
    "Status",
    "check",
    "check_notebook",
    "regenerate_command",
]

CHECKS = ("contract", "execute", "fidelity", "drift")


class Status(StrEnum):
    """The result of one check, or of a whole notebook."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    """The result of one check on one notebook.

    Attributes:
        check: One of ``CHECKS``.
        status: Passed, failed or skipped.
        message: Why it failed or was skipped (empty when it passed).
        location: Where in the notebook, as precisely as known.
        hint: How to fix it.
        file_line: The line of the ``.ipynb`` file of the failing source line (where the
            failing cell starts when the line is not known).
        command: The command that fixes it (the regenerate command of a stale service).
        steps: The steps of the fidelity proof that ran (environment, pipelines,
            differential, concurrency, state, memory), each with its status and time.
    """

    check: str
    status: Status
    message: str = ""
    location: Location = field(default_factory=Location)
    hint: str | None = None
    file_line: int | None = None
    command: str | None = None
    steps: tuple[dict[str, Any], ...] = ()

    def __str__(self) -> str:
        where = str(self.location)
        text = f"{where}: {self.message}" if where else self.message
        return f"{self.check}: {text}"

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-compatible data."""
        return {
            "check": self.check,
            "status": self.status.value,
            "message": self.message,
            "hint": self.hint,
            "command": self.command,
            "file_line": self.file_line,
            **self.location.to_dict(),
            **({"steps": list(self.steps)} if self.steps else {}),
        }


@dataclass(frozen=True)
class NotebookResult:
    """Every check of one notebook.

    Attributes:
        path: The notebook, as found (relative to the working folder when inside it).
        outcomes: One per check, in ``CHECKS`` order (none when the notebook was skipped).
        seconds: Wall-clock time of all checks.
        skipped: Why the whole notebook was skipped (no promoter tags), else ``None``.
        warnings: Warnings worth a look that do not fail the check.
        executed: The executed notebook (nbformat node) for HTML reports, when it ran.
    """

    path: Path
    outcomes: tuple[Outcome, ...] = ()
    seconds: float = 0.0
    skipped: str | None = None
    warnings: tuple[str, ...] = ()
    executed: Any = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> Status:
        """Failed if any check failed, skipped if the notebook was not checked, else passed."""
        if self.skipped is not None:
            return Status.SKIPPED
        if self.failures:
            return Status.FAILED
        return Status.PASSED

    @property
    def failures(self) -> list[Outcome]:
        """The failed checks."""
        return [o for o in self.outcomes if o.status is Status.FAILED]

    def outcome(self, check: str) -> Outcome | None:
        """The outcome of one check, if it ran."""
        return next((o for o in self.outcomes if o.check == check), None)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-compatible data."""
        return {
            "notebook": self.path.as_posix(),
            "status": self.status.value,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "checks": [o.to_dict() for o in self.outcomes],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class CheckReport:
    """The result of ``check``: every notebook, in the order found."""

    results: tuple[NotebookResult, ...]
    seconds: float
    jobs: int

    @property
    def failed(self) -> list[NotebookResult]:
        """Notebooks with at least one failed check."""
        return [r for r in self.results if r.status is Status.FAILED]

    @property
    def exit_code(self) -> int:
        """0 when clean, 1 when any check failed."""
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        """How many notebooks passed, failed and were skipped."""
        return {s.value: sum(r.status is s for r in self.results) for s in Status}

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-compatible data (``check --json``)."""
        return {
            "ok": not self.failed,
            **self.counts(),
            "seconds": round(self.seconds, 3),
            "jobs": self.jobs,
            "notebooks": [r.to_dict() for r in self.results],
        }


# --- checking one notebook --------------------------------------------------------------------


def check_notebook(
    path: str | Path,
    *,
    services: ServiceIndex | None = None,
    timeout: float | None = 600,
    on_progress: ProgressCallback | None = None,
    all_cells: bool = False,
    strict: bool = False,
    execute: bool = True,
    proof: ProofOptions | None = None,
) -> NotebookResult:
    """Run every check on one notebook.

    The notebook is read and inspected once: the static inspection is the contract check,
    and its execution the execute check.

    Args:
        path: The notebook.
        services: Generated services to check for drift (``find_services``); ``None`` searches
            the notebook's folder and git repository.
        timeout: Seconds any one cell may run (a slower cell fails the notebook as timed
            out); the generated service's own run gets the same limit.
        on_progress: Called with (notebook, cells done, cells in all) while the kernel runs.
        all_cells: Run every cell, ``skip`` cells and those after ``response`` too (by
            default only the promoted cells run).
        strict: Fail the fidelity check when the answer changes from run to run with the same
            parameters (by default a warning, as in ``convert``).
        execute: ``False`` checks the contract and drift only, with no kernel (the fast
            pre-commit hook); execute and fidelity are then skipped.
        proof: How far fidelity proves the service (by default as far as ``convert``).

    Returns:
        The outcome of each check. Problems in the notebook are outcomes, never exceptions.
    """
    import promoter

    path, begin = Path(path), time.perf_counter()
    services = find_services([path]) if services is None else services
    run = _Run(path, proof=proof)
    try:
        static = promoter.inspect(path, execute=False)
    except PromoterError as exc:
        run.fail("contract", exc)
        run.skip(("execute", "fidelity"), "the notebook breaks the contract")
    else:
        run.outcomes.append(Outcome("contract", Status.PASSED))
        run.warnings = [str(w) for w in static.warnings]
        if execute:
            _execute_and_build(run, static, timeout, on_progress, strict, all_cells)
        else:
            run.skip(("execute", "fidelity"), "not run (static check)")
    run.outcomes.append(_drift(path, services))
    return NotebookResult(
        path,
        tuple(run.outcomes),
        time.perf_counter() - begin,
        warnings=tuple(dict.fromkeys(run.warnings)),
        executed=run.executed,
    )


@dataclass
class _Run:
    """The outcomes of one notebook's checks as they come in."""

    path: Path
    outcomes: list[Outcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    executed: Any = None
    proof: ProofOptions | None = None

    def fail(self, check: str, exc: PromoterError) -> None:
        self.outcomes.append(_failure(check, exc, self.path))

    def skip(self, checks: Sequence[str], why: str) -> None:
        self.outcomes.extend(Outcome(c, Status.SKIPPED, why) for c in checks)


def _execute_and_build(
    run: _Run,
    static: Inspection,
    timeout: float | None,
    on_progress: ProgressCallback | None,
    strict: bool,
    all_cells: bool,
) -> None:
    try:
        inspection = static.execute(timeout=timeout, on_progress=on_progress, all_cells=all_cells)
    except PromoterError as exc:
        run.executed = exc.executed
        run.fail("execute", exc)
        run.skip(("fidelity",), "the notebook did not run")
        return
    assert inspection.execution is not None  # execute() always runs it
    run.executed = inspection.execution.executed
    run.warnings = [str(w) for w in inspection.warnings]
    run.outcomes.append(Outcome("execute", Status.PASSED))
    outcome, warnings = _fidelity(inspection, run, timeout, strict)
    run.outcomes.append(outcome)
    run.warnings += warnings


def _failure(check: str, exc: PromoterError, path: Path) -> Outcome:
    location = exc.location
    if location.notebook is None:
        location = Location(path, location.cell_index, location.cell_id, location.line)
    return Outcome(
        check,
        Status.FAILED,
        exc.message,
        location,
        exc.hint,
        file_line=cell_file_line(path, location.cell_index, location.line),
    )


def _fidelity(
    inspection: Inspection, run: _Run, timeout: float | None, strict: bool
) -> tuple[Outcome, list[str]]:
    """Build the service into a scratch folder, as ``convert`` does, and prove it.

    The build applies the one non-determinism rule (``_determinism.judge``), as in ``convert``.
    """
    from promoter._api import Finding
    from promoter.building.build import build_service, service_options
    from promoter.building.proof import ProofOptions

    notebook = inspection.notebook
    proof = run.proof or ProofOptions()
    try:
        generated = tuple(inspection.generated_runs(proof.generated, timeout))
        with tempfile.TemporaryDirectory(prefix="promoter-check-") as tmp:
            out = Path(tmp) / "service"
            build = build_service(
                [replace(inspection.plan(), generated=generated)],
                service_options([notebook], out),
                out,
                cell_timeout=timeout,
                strict=strict,
                isolated=proof.isolated,
            )
    except PromoterError as exc:
        return _failure("fidelity", exc, run.path), []
    warnings = [str(Finding(message, where)) for message, where in build.warnings]
    steps = tuple(step.to_dict() for step in build.steps)
    return Outcome("fidelity", Status.PASSED, steps=steps), warnings


def _drift(path: Path, services: ServiceIndex) -> Outcome:
    from promoter.building.drift import staleness
    from promoter.reading.notebook import read_notebook

    found = services.for_notebook(path)
    if not found:
        return Outcome("drift", Status.SKIPPED, "no generated service lists this notebook")
    try:
        notebook = read_notebook(path)
    except PromoterError:
        notebook = None  # the contract check says why; the data files can still be compared
    try:
        stale = [(f, lock, p) for f, lock in found if (p := staleness(path, notebook, f, lock))]
    except OSError as exc:
        return Outcome("drift", Status.FAILED, f"cannot read the notebook: {exc.strerror}")
    if not stale:
        return Outcome("drift", Status.PASSED)
    command = " && ".join(regenerate_command(folder, lock) for folder, lock, _ in stale)
    return Outcome(
        "drift",
        Status.FAILED,
        "; ".join(f"{_display(f)} is stale: " + ", ".join(p) for f, _, p in stale),
        Location(path),
        "regenerate with: " + command,
        command=command,
    )


def regenerate_command(folder: Path, lock: Lock) -> str:
    """The ``promoter convert`` command that regenerates a service, from the working folder."""
    sources = [_display((folder / str(e["path"])).resolve()) for e in lock.notebooks]
    quoted = " ".join(shlex.quote(s) for s in sources)
    return f"promoter convert {quoted} -o {shlex.quote(_display(folder))}"


def _display(path: Path) -> str:
    """``path`` relative to the working folder when inside it, else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return resolved.as_posix()


# --- checking many notebooks ------------------------------------------------------------------


def check(
    paths: Sequence[str | Path],
    *,
    jobs: int | None = None,
    timeout: float | None = 600,
    exclude: Sequence[str] = (),
    skip_untagged: bool = False,
    execute: bool = True,
    all_cells: bool = False,
    on_start: Callable[[list[Path]], None] | None = None,
    on_progress: ProgressCallback | None = None,
    on_result: Callable[[NotebookResult], None] | None = None,
    strict: bool = False,
    proof: ProofOptions | None = None,
    changed: bool = False,
) -> CheckReport:
    """Check every notebook under ``paths``, ``jobs`` at a time.

    Args:
        paths: Notebooks or folders (searched recursively; see ``find_notebooks``).
        jobs: Notebooks checked at once (default: the number of CPUs).
        timeout: Seconds any one cell may run.
        exclude: gitignore-style globs of files and folders to leave out.
        skip_untagged: Skip named notebooks without promoter tags too (found ones always are).
        execute: ``False`` runs no kernel: only the contract and drift checks.
        all_cells: Run every cell, ``skip`` cells and those after ``response`` too.
        on_start: Called with the notebooks to check, before any runs.
        on_progress: Called with (notebook, cells done, cells in all) while kernels run.
        on_result: Called with each notebook's result as soon as it is known.
        strict: Fail a notebook whose answer changes from run to run (else a warning).
        proof: How far fidelity proves each service (by default as far as ``convert``).
        changed: ``paths`` are changed files (as pre-commit passes them): notebooks are
            checked, a data file a service carries checks the notebooks that read it, other
            files are ignored.

    Raises:
        UsageError: A path does not exist, or ``jobs`` is not positive.
    """
    begin = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    services = find_services([*paths, *_cwd_repository()])
    found = find_notebooks(services.changed(paths) if changed else paths, exclude)
    todo = [p for p, named in found if (named and not skip_untagged) or has_promoter_tags(p)]
    if on_start is not None:
        on_start(todo)
    results = _untagged([p for p, _ in found if p not in todo], on_result)
    job = _Job(Path.cwd(), services, timeout, strict, execute, all_cells, proof)
    # Without kernels a notebook takes milliseconds: worker processes would cost more than that.
    workers = jobs if execute else 1
    results.update(_check_all(job, todo, workers, on_progress, on_result))
    ordered = tuple(results[p] for p, _ in found)
    return CheckReport(ordered, time.perf_counter() - begin, jobs)


@dataclass(frozen=True)
class _Job:
    """What every notebook's check shares (pickled to worker processes)."""

    cwd: Path
    services: ServiceIndex
    timeout: float | None
    strict: bool = False
    execute: bool = True
    all_cells: bool = False
    proof: ProofOptions | None = None

    def __call__(self, path: Path, on_progress: ProgressCallback | None) -> NotebookResult:
        os.chdir(self.cwd)  # paths are relative to where the user ran the check
        try:
            return check_notebook(
                path,
                services=self.services,
                timeout=self.timeout,
                on_progress=on_progress,
                all_cells=self.all_cells,
                strict=self.strict,
                execute=self.execute,
                proof=self.proof,
            )
        except Exception as exc:  # a promoter bug must not hide the other notebooks' results
            return _internal_error(path, exc)
        finally:
            os.chdir(self.cwd)


def _check_all(
    job: _Job,
    todo: list[Path],
    jobs: int,
    on_progress: ProgressCallback | None,
    on_result: Callable[[NotebookResult], None] | None,
) -> dict[Path, NotebookResult]:
    if jobs == 1 or len(todo) <= 1:
        results = {}
        for path in todo:
            results[path] = job(path, on_progress)
            if on_result is not None:
                on_result(results[path])
        return results
    from promoter.running.pool import run_in_processes

    return run_in_processes(
        job,
        todo,
        jobs=jobs,
        on_progress=on_progress,
        on_result=None if on_result is None else lambda _, result: on_result(result),
        on_crash=_internal_error,
    )


def _internal_error(path: Path, exc: BaseException) -> NotebookResult:
    message = f"internal error: {type(exc).__name__}: {exc}"
    return NotebookResult(path, (Outcome("contract", Status.FAILED, message, Location(path)),))


def _untagged(
    paths: list[Path], on_result: Callable[[NotebookResult], None] | None
) -> dict[Path, NotebookResult]:
    """The found notebooks with no promoter tags: skipped, and reported as such at once."""
    results = {}
    for path in paths:
        results[path] = NotebookResult(path, skipped="no promoter tags (not a promotable notebook)")
        if on_result is not None:
            on_result(results[path])
    return results


def _cwd_repository() -> list[Path]:
    root = git_root(Path.cwd().resolve())
    return [root] if root is not None else []
