"""``promoter check``: prove in CI that notebooks still promote, run, and match their services.

Four checks per notebook, each a JUnit test case and a column of the summary:

    contract  the notebook reads, its tags follow the contract, parameters and response parse
    execute   papermill runs it with its defaults; request and response models are inferred
    fidelity  the extracted service code returns what the executed notebook returned
    drift     every generated service whose ``promoter.lock.json`` names this notebook was
              generated from this exact file by this promoter version

Notebooks run in parallel worker processes (``-j``), each notebook's kernel a subprocess of its
worker; the results, including each executed notebook for HTML reports, come back to the caller.
The module is pure library code: the CLI and the pytest plugin only render its results.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from promoter._exceptions import Location, PromoterError, UsageError

__all__ = [
    "CHECKS",
    "CheckReport",
    "NotebookResult",
    "Outcome",
    "ServiceIndex",
    "Status",
    "cell_file_line",
    "check",
    "check_notebook",
    "find_notebooks",
    "find_services",
    "github_annotations",
    "has_promoter_tags",
    "junit_xml",
    "regenerate_command",
    "write_html_reports",
]

CHECKS = ("contract", "execute", "fidelity", "drift")
#: Folders never searched for notebooks or services (besides hidden ones).
IGNORED_DIRS = frozenset({".ipynb_checkpoints", ".venv", "venv", "node_modules", "build"})
_PROMOTER_TAGS = frozenset({"parameters", "setup", "response", "skip"})

ProgressCallback = Callable[[str, int, int], None]


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
        file_line: The line of the ``.ipynb`` file where the failing cell starts.
        command: The command that fixes it (the regenerate command of a stale service).
    """

    check: str
    status: Status
    message: str = ""
    location: Location = field(default_factory=Location)
    hint: str | None = None
    file_line: int | None = None
    command: str | None = None

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


# --- finding notebooks and services -----------------------------------------------------------


def find_notebooks(
    paths: Sequence[str | Path], exclude: Sequence[str] = ()
) -> list[tuple[Path, bool]]:
    """The notebooks to check: named files, and ``*.ipynb`` found recursively in folders.

    Args:
        paths: Notebooks or folders.
        exclude: gitignore-style globs: a pattern without ``/`` matches any file or folder
            name; one with ``/`` matches the path relative to the searched folder (or to the
            working folder for named files); a trailing ``/`` is allowed.

    Returns:
        ``(path, named)`` pairs, sorted within each folder; ``named`` is true for files named
        explicitly (checked even without promoter tags).

    Raises:
        UsageError: A path does not exist, or is a file that is not a notebook.
    """
    found: list[tuple[Path, bool]] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = [(p, False) for p in _walk_notebooks(path, exclude)]
        elif path.is_file():
            if path.suffix != ".ipynb":
                raise UsageError(
                    f"{path} is not a notebook (.ipynb)", hint="pass notebooks or folders"
                )
            candidates = [] if _excluded(_relative_to_cwd(path), exclude) else [(path, True)]
        else:
            raise UsageError(f"no such file or folder: {path}", hint="check the path")
        for candidate, named in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append((candidate, named))
    return found


def _walk_notebooks(root: Path, exclude: Sequence[str]) -> Iterable[Path]:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        rel = PurePosixPath(here.relative_to(root).as_posix())
        dirs[:] = sorted(d for d in dirs if not _ignored_dir(d) and not _excluded(rel / d, exclude))
        for name in sorted(files):
            if name.endswith(".ipynb") and not _excluded(rel / name, exclude):
                yield here / name


def _ignored_dir(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_DIRS


def _excluded(rel: PurePosixPath, patterns: Sequence[str]) -> bool:
    text = rel.as_posix().removeprefix("./")
    for raw in patterns:
        pattern = raw.strip().rstrip("/")
        if not pattern:
            continue
        if "/" not in pattern:
            if any(fnmatch.fnmatch(part, pattern) for part in rel.parts):
                return True
            continue
        pattern = pattern.lstrip("/")
        candidates = [text, *(p.as_posix() for p in rel.parents if p.as_posix() != ".")]
        options = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatch(c, o) for c in candidates for o in options):
            return True
    return False


def _relative_to_cwd(path: Path) -> PurePosixPath:
    return PurePosixPath(Path(os.path.relpath(path.resolve())).as_posix())


def has_promoter_tags(path: Path) -> bool:
    """Whether any cell carries a promoter tag (or the notebook has ``metadata.promoter``).

    A file that cannot be parsed counts as tagged: the check then reports why it is broken.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if "promoter" in data.get("metadata", {}):
            return True
        cells = data.get("cells")
        if cells is None:  # nbformat 3 keeps its cells in worksheets
            cells = [c for ws in data.get("worksheets", []) for c in ws.get("cells", [])]
        return any(_PROMOTER_TAGS & set(c.get("metadata", {}).get("tags", [])) for c in cells)
    except (OSError, ValueError, AttributeError, TypeError):
        return True


@dataclass(frozen=True)
class ServiceIndex:
    """Generated services found on disk, by the resolved path of each source notebook."""

    services: dict[Path, list[tuple[Path, Any]]] = field(default_factory=dict)

    def for_notebook(self, path: Path) -> list[tuple[Path, Any]]:
        """``(service folder, lock)`` for each service generated from ``path``."""
        return self.services.get(path.resolve(), [])


def find_services(roots: Iterable[str | Path]) -> ServiceIndex:
    """Find every ``promoter.lock.json`` under ``roots`` and the git repositories holding them.

    Named folders are searched, and the git repository holding each named path.

    Hidden folders, virtual environments, ``node_modules`` and ``build`` are not searched.
    """
    from promoter._output import LOCK_NAME, read_lock

    searched: set[Path] = set()
    services: dict[Path, list[tuple[Path, Any]]] = {}
    for root in _search_roots(roots):
        for folder, dirs, files in os.walk(root):
            here = Path(folder).resolve()
            if here in searched:
                dirs[:] = []
                continue
            searched.add(here)
            dirs[:] = sorted(d for d in dirs if not _ignored_dir(d))
            if LOCK_NAME not in files:
                continue
            lock = read_lock(here)
            if lock is None:
                continue
            for entry in lock.notebooks:
                source = (here / str(entry.get("path", ""))).resolve()
                services.setdefault(source, []).append((here, lock))
    return ServiceIndex(services)


def _search_roots(paths: Iterable[str | Path]) -> list[Path]:
    roots: list[Path] = []
    for raw in paths:
        path = Path(raw).resolve()
        folder = path if path.is_dir() else path.parent
        # A named folder is searched; a named file's folder only through its repository, so
        # checking ~/nb.ipynb outside any repository does not walk the home folder.
        for candidate in (folder if path.is_dir() else None, _git_root(folder)):
            if candidate is not None and candidate not in roots:
                roots.append(candidate)
    # Search the widest roots first so nested ones are skipped as already searched.
    return sorted(roots, key=lambda p: len(p.parts))


def _git_root(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


# --- checking one notebook --------------------------------------------------------------------


def check_notebook(
    path: str | Path,
    *,
    services: ServiceIndex | None = None,
    timeout: float | None = 600,
    on_progress: Callable[[int, int], None] | None = None,
) -> NotebookResult:
    """Run every check on one notebook.

    Args:
        path: The notebook.
        services: Generated services to check for drift (``find_services``); ``None`` searches
            the notebook's folder and git repository.
        timeout: Seconds any one cell may run (a slower cell fails the notebook as timed
            out); the generated service's own run gets the same limit.
        on_progress: Called with (cells done, cells in all) while the kernel runs.

    Returns:
        The outcome of each check. Problems in the notebook are outcomes, never exceptions.
    """
    import promoter

    path = Path(path)
    begin = time.perf_counter()
    if services is None:
        services = find_services([path])
    outcomes: list[Outcome] = []
    warnings: list[str] = []
    executed: Any = None
    try:
        static = promoter.inspect(path, execute=False)
    except PromoterError as exc:
        outcomes.append(_failure("contract", exc, path))
    else:
        outcomes.append(Outcome("contract", Status.PASSED))
        warnings += [str(w) for w in static.warnings]
    if outcomes[0].status is Status.PASSED:
        progress = None if on_progress is None else _cells_only(on_progress)
        try:
            inspection = promoter.inspect(path, timeout=timeout, on_progress=progress)
        except PromoterError as exc:
            executed = exc.executed
            outcomes.append(_failure("execute", exc, path))
            outcomes.append(_skipped("fidelity", "the notebook did not run"))
        else:
            assert inspection.execution is not None  # inspect executes by default
            executed = inspection.execution.executed
            warnings = [str(w) for w in inspection.warnings]
            outcomes.append(Outcome("execute", Status.PASSED))
            outcomes.append(_fidelity(inspection, path, timeout))
    else:
        outcomes.append(_skipped("execute", "the notebook breaks the contract"))
        outcomes.append(_skipped("fidelity", "the notebook breaks the contract"))
    outcomes.append(_drift(path, services))
    return NotebookResult(
        path,
        tuple(outcomes),
        time.perf_counter() - begin,
        warnings=tuple(dict.fromkeys(warnings)),
        executed=executed,
    )


def _cells_only(callback: Callable[[int, int], None]) -> Callable[[str, int, int], None]:
    def progress(_name: str, done: int, total: int) -> None:
        callback(done, total)

    return progress


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
        file_line=cell_file_line(path, location.cell_index),
    )


def _skipped(check: str, why: str) -> Outcome:
    return Outcome(check, Status.SKIPPED, why)


def _fidelity(inspection: Any, path: Path, timeout: float | None) -> Outcome:
    """Render the service into a scratch folder and compare its answer with the notebook's."""
    from promoter._api import _options, _response
    from promoter._render import NotebookPlan, render_service
    from promoter._verify import verify_service

    notebook = inspection.notebook
    where = notebook.at(notebook.response_cell)
    try:
        response = _response(inspection)
        plan = NotebookPlan(notebook, inspection.request, response, inspection.extraction)
        with tempfile.TemporaryDirectory(prefix="promoter-check-") as tmp:
            build = Path(tmp) / "service"
            for rel, text in render_service([plan], _options([inspection], build, False)).items():
                target = build / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            [fidelity] = verify_service(
                build,
                [(notebook, "app", response.model, response.sample)],
                timeout=_service_timeout(notebook, timeout),
            )
    except PromoterError as exc:
        return _failure("fidelity", exc, path)
    if fidelity.difference is not None:
        return Outcome(
            "fidelity",
            Status.FAILED,
            f"the service's answer differs from the notebook's: {fidelity.difference}",
            where,
            "the notebook is not deterministic (seed its random generators), or depends on "
            "state the service does not have",
            file_line=cell_file_line(path, where.cell_index),
        )
    if fidelity.model_error is not None:
        problem = " ".join(fidelity.model_error.split())[:300]
        return Outcome(
            "fidelity",
            Status.FAILED,
            f"the service's answer does not fit its response model: {problem}",
            where,
            file_line=cell_file_line(path, where.cell_index),
        )
    return Outcome("fidelity", Status.PASSED)


def _service_timeout(notebook: Any, timeout: float | None) -> float:
    # The service runs every promoted cell in one go, in a fresh interpreter: give it the
    # per-cell limit for each of them, plus the interpreter's start-up and imports.
    cells = sum(1 for cell in notebook.cells if cell.promoted)
    return (timeout or 600) * max(cells, 1) + 30


def _drift(path: Path, services: ServiceIndex) -> Outcome:
    from promoter import __version__
    from promoter._output import sha256

    found = services.for_notebook(path)
    if not found:
        return _skipped("drift", "no generated service lists this notebook")
    try:
        digest = sha256(path.read_bytes())
    except OSError as exc:
        return Outcome("drift", Status.FAILED, f"cannot read the notebook: {exc.strerror}")
    problems = []
    commands = []
    for folder, lock in found:
        entry = next(
            e for e in lock.notebooks if (folder / str(e["path"])).resolve() == path.resolve()
        )
        shown = _display(folder)
        if entry.get("sha256") != digest:
            problems.append(f"{shown} is stale: the notebook changed since it was generated")
        elif lock.promoter_version != __version__:
            problems.append(
                f"{shown} was generated by promoter {lock.promoter_version}, "
                f"this is promoter {__version__}"
            )
        else:
            continue
        commands.append(regenerate_command(folder, lock))
    if not problems:
        return Outcome("drift", Status.PASSED)
    return Outcome(
        "drift",
        Status.FAILED,
        "; ".join(problems),
        Location(path),
        "regenerate with: " + " && ".join(commands),
        command=" && ".join(commands),
    )


def regenerate_command(folder: Path, lock: Any) -> str:
    """The ``promoter convert`` command that regenerates a service, from the working folder."""
    import shlex

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


def cell_file_line(path: Path, cell_index: int | None) -> int | None:
    """The line of the ``.ipynb`` file where cell ``cell_index`` starts (its ``{``).

    Found by scanning the raw JSON text, so annotations point at the cell in a diff view.
    ``None`` when the index is unknown or the file is not nbformat 4 JSON.
    """
    if cell_index is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    starts = _cell_starts(text)
    return starts[cell_index] if 0 <= cell_index < len(starts) else None


def _cell_starts(text: str) -> list[int]:
    """Lines of the objects in the top-level ``cells`` array of a JSON document."""
    starts: list[int] = []
    stack: list[str] = []
    line = 1
    key: str | None = None  # the last string at depth 1 (a top-level key)
    in_cells = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\n":
            line += 1
        elif char == '"':
            end = index + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if len(stack) == 1:
                key = text[index + 1 : end]
            line += text.count("\n", index, end)
            index = end
        elif char in "[{":
            stack.append(char)
            if len(stack) == 2 and char == "[":
                in_cells = key == "cells"
            elif len(stack) == 3 and char == "{" and in_cells:
                starts.append(line)
        elif char in "]}":
            if stack:
                stack.pop()
            if len(stack) == 1:
                in_cells = False
        index += 1
    return starts


# --- checking many notebooks ------------------------------------------------------------------


def check(
    paths: Sequence[str | Path],
    *,
    jobs: int | None = None,
    timeout: float | None = 600,
    exclude: Sequence[str] = (),
    skip_untagged: bool = False,
    on_start: Callable[[list[Path]], None] | None = None,
    on_progress: ProgressCallback | None = None,
    on_result: Callable[[NotebookResult], None] | None = None,
) -> CheckReport:
    """Check every notebook under ``paths``, ``jobs`` at a time.

    Args:
        paths: Notebooks or folders (searched recursively; see ``find_notebooks``).
        jobs: Notebooks checked at once (default: the number of CPUs).
        timeout: Seconds any one cell may run.
        exclude: gitignore-style globs of files and folders to leave out.
        skip_untagged: Skip named notebooks without promoter tags too (found ones always are).
        on_start: Called with the notebooks to check, before any runs.
        on_progress: Called with (notebook, cells done, cells in all) while kernels run.
        on_result: Called with each notebook's result as soon as it is known.

    Raises:
        UsageError: A path does not exist, or ``jobs`` is not positive.
    """
    begin = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    found = find_notebooks(paths, exclude)
    services = find_services([*paths, *_cwd_repository()])
    todo = [p for p, named in found if (named and not skip_untagged) or has_promoter_tags(p)]
    if on_start is not None:
        on_start(todo)
    results: dict[Path, NotebookResult] = {}
    for path, _ in found:
        if path not in todo:
            results[path] = NotebookResult(
                path, skipped="no promoter tags (not a promotable notebook)"
            )
            if on_result is not None:
                on_result(results[path])

    if todo:
        cwd = Path.cwd()
        if jobs == 1 or len(todo) == 1:
            for path in todo:
                results[path] = _safe_check(path, cwd, services, timeout, on_progress)
                if on_result is not None:
                    on_result(results[path])
        else:
            results.update(
                _in_processes(todo, cwd, services, timeout, jobs, on_progress, on_result)
            )
    ordered = tuple(results[p] for p, _ in found)
    return CheckReport(ordered, time.perf_counter() - begin, jobs)


def _in_processes(
    todo: list[Path],
    cwd: Path,
    services: ServiceIndex,
    timeout: float | None,
    jobs: int,
    on_progress: ProgressCallback | None,
    on_result: Callable[[NotebookResult], None] | None,
) -> dict[Path, NotebookResult]:
    """Check notebooks in worker processes, relaying their progress to this one.

    Processes, not threads: papermill changes the process-wide working folder while a notebook
    runs, and each kernel inherits it, so two notebooks from different folders cannot run in
    one process at once. Workers fork from a server that has imported papermill once.
    """
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["promoter._check", "papermill", "nbclient", "nbconvert"])
    events: Any = context.Queue()

    def relay() -> None:
        while (event := events.get()) is not None:
            if on_progress is not None:
                on_progress(*event)

    relay_thread = threading.Thread(target=relay, name="promoter-check-progress", daemon=True)
    relay_thread.start()
    results: dict[Path, NotebookResult] = {}
    workers = min(jobs, len(todo))
    try:
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(events,)
        ) as pool:
            futures = {
                pool.submit(_worker_check, path, cwd, services, timeout): path for path in todo
            }
            for future in as_completed(futures):
                path = futures[future]
                try:
                    results[path] = future.result()
                except Exception as exc:  # the worker died (killed, out of memory)
                    results[path] = _internal_error(path, exc)
                if on_result is not None:
                    on_result(results[path])
    finally:
        events.put(None)
        relay_thread.join(timeout=5)
    return results


_worker_events: Any = None


def _init_worker(events: Any) -> None:
    global _worker_events
    _worker_events = events


def _worker_check(
    path: Path, cwd: Path, services: ServiceIndex, timeout: float | None
) -> NotebookResult:
    events = _worker_events

    def progress(name: str, done: int, total: int) -> None:
        if events is not None:
            events.put((name, done, total))

    return _safe_check(path, cwd, services, timeout, progress)


def _safe_check(
    path: Path,
    cwd: Path,
    services: ServiceIndex,
    timeout: float | None,
    on_progress: ProgressCallback | None,
) -> NotebookResult:
    os.chdir(cwd)  # paths are relative to where the user ran the check
    progress = None if on_progress is None else _for_notebook(on_progress, path.as_posix())
    try:
        return check_notebook(path, services=services, timeout=timeout, on_progress=progress)
    except Exception as exc:  # a promoter bug must not hide the other notebooks' results
        return _internal_error(path, exc)
    finally:
        os.chdir(cwd)


def _internal_error(path: Path, exc: BaseException) -> NotebookResult:
    message = f"internal error: {type(exc).__name__}: {exc}"
    return NotebookResult(path, (Outcome("contract", Status.FAILED, message, Location(path)),))


def _cwd_repository() -> list[Path]:
    root = _git_root(Path.cwd().resolve())
    return [root] if root is not None else []


def _for_notebook(callback: ProgressCallback, name: str) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        callback(name, done, total)

    return progress


# --- output formats ---------------------------------------------------------------------------


def github_annotations(report: CheckReport) -> list[str]:
    """GitHub Actions workflow commands: one ``::error`` per failed check, pointing at the file.

    The line is the line of the ``.ipynb`` file where the failing cell starts, when known.
    """
    lines = []
    for result in report.results:
        for outcome in result.failures:
            props = [f"file={_gh_property(result.path.as_posix())}"]
            if outcome.file_line is not None:
                props.append(f"line={outcome.file_line}")
            props.append(f"title={_gh_property(_title(outcome))}")
            message = (
                str(outcome.location) + ": " if outcome.location.cell_index is not None else ""
            )
            message += outcome.message
            if outcome.hint:
                message += f"\nhint: {outcome.hint}"
            lines.append(f"::error {','.join(props)}::{_gh_data(message)}")
        for warning in result.warnings:
            lines.append(
                f"::warning file={_gh_property(result.path.as_posix())},"
                f"title=promoter check::{_gh_data(warning)}"
            )
    return lines


def _title(outcome: Outcome) -> str:
    titles = {
        "contract": "promoter check: notebook breaks the contract",
        "execute": "promoter check: notebook fails to run",
        "fidelity": "promoter check: service differs from notebook",
        "drift": "promoter check: generated service is stale",
    }
    return titles.get(outcome.check, f"promoter check: {outcome.check}")


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def junit_xml(report: CheckReport) -> str:
    """JUnit XML: one ``testsuite``, one ``testcase`` per notebook and check.

    A failed check is a ``failure`` (message: the one-line problem; text: location and hint); a
    check that could not run, or a notebook without promoter tags, is ``skipped``.
    """
    import xml.etree.ElementTree as ET

    cases = []
    for result in report.results:
        classname = result.path.as_posix().removesuffix(".ipynb").replace("/", ".")
        outcomes = result.outcomes or tuple(
            Outcome(c, Status.SKIPPED, result.skipped or "") for c in CHECKS
        )
        for outcome in outcomes:
            case = ET.Element(
                "testcase",
                name=outcome.check,
                classname=classname,
                file=result.path.as_posix(),
                time=f"{result.seconds if outcome.check == 'execute' else 0.0:.3f}",
            )
            if outcome.file_line is not None:
                case.set("line", str(outcome.file_line))
            if outcome.status is Status.FAILED:
                failure = ET.SubElement(
                    case, "failure", message=outcome.message, type=outcome.check
                )
                failure.text = "\n".join(
                    t for t in (str(outcome), f"hint: {outcome.hint}" if outcome.hint else "") if t
                )
            elif outcome.status is Status.SKIPPED:
                ET.SubElement(case, "skipped", message=outcome.message)
            cases.append(case)
    suite = ET.Element(
        "testsuite",
        name="promoter check",
        tests=str(len(cases)),
        failures=str(sum(c.find("failure") is not None for c in cases)),
        errors="0",
        skipped=str(sum(c.find("skipped") is not None for c in cases)),
        time=f"{report.seconds:.3f}",
    )
    suite.extend(cases)
    suites = ET.Element("testsuites", name="promoter", tests=suite.get("tests", "0"))
    suites.append(suite)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


_REPORT_CSS = """
<style>
.celltag_promoter-failed { outline: 3px solid #d1242f; outline-offset: 2px;
  background: #ffebe9; }
.celltag_promoter-failed::before { content: "promoter check failed here"; color: #d1242f;
  font-weight: bold; font-family: sans-serif; }
</style>
"""
_CAPTURE_IDS = ("promoter-capture-response", "promoter-capture-parameters")


def write_html_reports(report: CheckReport, folder: str | Path) -> list[Path]:
    """Write each checked notebook as HTML (nbconvert), the failing cell highlighted.

    The executed notebook is used when it ran (outputs and the error included), else the
    notebook as saved. Files are named after the notebook path (``a/b.ipynb`` -> ``a__b.html``).
    """
    import nbformat
    from nbconvert import HTMLExporter

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    written = []
    for result in report.results:
        if result.status is Status.SKIPPED:
            continue
        node = result.executed
        if node is None:
            try:
                node = nbformat.read(result.path, as_version=4)
            except Exception:  # unreadable notebooks have nothing to show
                continue
        node = _annotated(node, result)
        body, _ = exporter.from_notebook_node(node)
        body = body.replace("</head>", _REPORT_CSS + "</head>", 1)
        target = out / (result.path.as_posix().removeprefix("./").replace("/", "__") + ".html")
        target = target.with_name(target.name.replace(".ipynb.html", ".html"))
        target.write_text(body, encoding="utf-8")
        written.append(target)
    return written


def _annotated(node: Any, result: NotebookResult) -> Any:
    import copy

    import nbformat

    node = copy.deepcopy(node)
    node.cells = [c for c in node.cells if c.get("id") not in _CAPTURE_IDS]
    failed_ids = {o.location.cell_id for o in result.failures if o.location.cell_id}
    for cell in node.cells:
        if cell.get("id") in failed_ids:
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            tags.append("promoter-failed")
    lines = [f"promoter check: {result.status.value} ({result.path.as_posix()})"]
    lines += [f"- {o}" + (f"\n  hint: {o.hint}" if o.hint else "") for o in result.failures]
    banner = nbformat.v4.new_markdown_cell(
        "```\n" + "\n".join(lines).replace("```", "'''") + "\n```"
    )
    banner.metadata["tags"] = ["promoter-report"]
    node.cells.insert(0, banner)
    return node
