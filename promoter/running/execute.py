"""Run a notebook with papermill and record the value its response cell produced.

What runs is what is promoted: an in-memory copy of the notebook without its ``skip`` cells and
without the cells after ``response`` (``all_cells`` runs every cell), with three cells injected:
the first installs the audit hook that observes the data files the notebook reads (``_files``),
one after the parameters cell records the parameter values, one after the response cell converts
the response value to JSON (with the same converter the generated service uses) and emits it as
a display output. The copy keeps the cell ids, so errors are mapped back to the original cell
and line.
"""

from __future__ import annotations

import copy
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from promoter._exceptions import (
    ExecutionError,
    Location,
    ParameterError,
    PromoterError,
    ResponseError,
)
from promoter.analysis.files import (
    OBSERVER_CELL_ID,
    Observed,
    observed_code,
    observer_code,
    project_root,
)
from promoter.building.resources import (
    JSONABLE_PACKAGE,
    jsonable_loader_code,
    jsonable_sources,
)
from promoter.reading.notebook import Cell, Notebook, Role
from promoter.reading.source import ResponseExpression, prefix_before, source_lines

__all__ = [
    "CAPTURE_CELL_IDS",
    "CAPTURE_MIME",
    "Execution",
    "ProgressCallback",
    "execute",
    "quiet_papermill",
]

CAPTURE_MIME = "application/vnd.promoter.capture+json"
_RESPONSE_VAR = "__promoter_response__"
_CAPTURE_RESPONSE_ID = "promoter-capture-response"
_CAPTURE_PARAMS_ID = "promoter-capture-parameters"
#: The ids of the cells promoter injects into the copy it runs (not the author's cells).
CAPTURE_CELL_IDS = (_CAPTURE_RESPONSE_ID, _CAPTURE_PARAMS_ID, OBSERVER_CELL_ID)
_KERNEL_START_TIMEOUT = 300
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[(\d+)\], line (\d+)")

#: Progress of a run: called with (notebook, cells done, cells in all); the notebook is its path
#: as given. The one progress shape from the kernel up to the CLI, the check and JupyterLab.
ProgressCallback = Callable[[str, int, int], None]
E = TypeVar("E", bound=PromoterError)


@dataclass(frozen=True)
class Execution:
    """The result of one papermill run.

    Attributes:
        response: The response value, converted to JSON-native data.
        kind: The response value's Python type (``module.QualName``).
        parameters: The runtime values of the parameters, as JSON-native data.
        executed: The executed notebook (nbformat node), for reports.
        seconds: Wall-clock time of the run, kernel start included.
        files: The files the run opened for reading (seen by the audit hook).
        modules: The top-level modules loaded in the kernel when the response was recorded
            (what the code really imported, lazy backends and unpickled classes included).
    """

    response: Any
    kind: str
    parameters: dict[str, Any]
    executed: Any
    seconds: float
    files: Observed = field(default_factory=Observed)
    modules: tuple[str, ...] = ()


def execute(
    notebook: Notebook,
    response: ResponseExpression,
    parameter_names: list[str],
    parameters: dict[str, Any] | None = None,
    *,
    timeout: float | None = 600,
    on_progress: ProgressCallback | None = None,
    all_cells: bool = False,
) -> Execution:
    """Execute ``notebook`` with papermill and capture its response.

    Args:
        notebook: The notebook to run.
        response: The notebook's response expression (its value is captured).
        parameter_names: The public parameters whose runtime values to record.
        parameters: Values to inject (papermill's parameters); ``None`` runs the defaults.
        timeout: Seconds any one cell may run.
        on_progress: Called with (notebook, cells done, cells in all) while the kernel runs.
        all_cells: Run every cell, ``skip`` cells and those after ``response`` too.

    Raises:
        ExecutionError: A cell raised, timed out, printed more than the notebook's
            ``max_output_mb``, or the kernel died. Either way, the kernel and every process
            the notebook's code started are gone when this returns or raises.
        ResponseError: The response value cannot be turned into JSON.
        ParameterError: papermill could not inject a parameter value.
    """
    node = _instrumented(notebook, response, parameter_names, all_cells)
    cells = _Progress(str(notebook.path), len(node.cells), on_progress)
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="promoter-run-") as tmp:
        run = _Papermill(notebook, response, node, Path(tmp), timeout)
        executed = run(parameters or {}, cells)
    cells.finished()
    capture = _captured(notebook, executed)
    cells_run = _cells_by_count(notebook, executed)
    seen = capture["files"]
    return Execution(
        response=capture["response"],
        kind=capture["kind"],
        parameters=capture["parameters"],
        executed=executed,
        seconds=time.perf_counter() - begin,
        files=Observed(
            **{
                kind: {p: cells_run.get(n) for p, n in seen[kind].items()}
                for kind in seen
                if kind != "lines"  # lines of cells, not execution counts
            },
            lines=seen["lines"],
        ),
        modules=tuple(capture.get("modules", ())),
    )


def _cells_by_count(notebook: Notebook, executed: Any) -> dict[int, int]:
    """The original cell index of each execution count of the run."""
    found = {}
    for cell in executed.cells:
        original = _original(notebook, cell)
        count = cell.get("execution_count")
        if original is not None and isinstance(count, int):
            found[count] = original.index
    return found


@contextmanager
def quiet_papermill() -> Iterator[None]:
    """Keep papermill's and nbclient's log lines off stderr while promoter calls them.

    They log through the ``papermill`` logger ("Unable to parse line 3", "Kernel died while
    waiting for execute reply"), and with no handler configured Python prints warnings to
    stderr. promoter reports every failure itself, with the cell.
    """
    logger = logging.getLogger("papermill")
    saved = logger.propagate
    handler = logging.NullHandler()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


@dataclass
class _Progress:
    """Reports (notebook, cells done, cells in all) and remembers the cell that is running."""

    name: str
    total: int
    callback: ProgressCallback | None
    running: int = 0

    def on_cell_start(self, cell: Any, cell_index: int) -> None:
        self.running = cell_index
        if self.callback is not None:
            self.callback(self.name, cell_index, self.total)

    def finished(self) -> None:
        if self.callback is not None:
            self.callback(self.name, self.total, self.total)


@dataclass
class _Papermill:
    """One papermill run of an instrumented copy, its failures mapped to promoter errors."""

    notebook: Notebook
    response: ResponseExpression
    node: Any
    folder: Path
    timeout: float | None

    def __call__(self, parameters: dict[str, Any], cells: _Progress) -> Any:
        import papermill

        from promoter.running.kernel import ENGINE, KernelRun

        with self._stderr.open("w") as stderr, quiet_papermill():
            limit = int(self.notebook.settings.max_output_mb * 1_000_000)
            run = KernelRun(max_output=limit, uncounted=CAPTURE_MIME, stderr=stderr)
            try:
                return papermill.execute_notebook(
                    self.node,
                    str(self._output),
                    parameters=parameters,
                    engine_name=ENGINE,
                    kernel_name="python3",
                    language="python",
                    progress_bar=False,
                    log_output=False,
                    cwd=str(self.notebook.path.parent.resolve()),
                    execution_timeout=self.timeout,
                    # papermill's 60 s is too short for a cold start on a busy machine (first
                    # imports compile bytecode; seen failing in CI with 4 kernels on 2 cores).
                    start_timeout=_KERNEL_START_TIMEOUT,
                    run=run,
                    on_cell_start=cells.on_cell_start,
                    # papermill rewrites the whole output notebook after every cell by
                    # default: quadratic in cells (1,000 cells took 124 s). It is written
                    # once at the end (and on a cell error) instead.
                    request_save_on_cell_execute=False,
                )
            except Exception as exc:
                raise self._error(exc, cells.running) from None
            finally:
                run.end()  # nothing the notebook started outlives the run

    @property
    def _output(self) -> Path:
        return self.folder / "executed.ipynb"

    @property
    def _stderr(self) -> Path:
        return self.folder / "kernel-stderr.txt"

    def _error(self, exc: Exception, running: int) -> Exception:
        import papermill
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        from promoter.running.kernel import OutputLimitExceeded

        notebook = self.notebook
        if isinstance(exc, papermill.PapermillExecutionError):
            return _execution_error(notebook, self.response, _read(self._output), exc)
        cell = _original(notebook, self.node.cells[running])
        if isinstance(exc, OutputLimitExceeded):
            cell = _original(notebook, self.node.cells[exc.cell_index])
            limit = notebook.settings.max_output_mb
            error = ExecutionError(
                f"the run printed more than {limit:g} MB of output, so promoter stopped it "
                "in this cell",
                location=notebook.at(cell),
                hint="print less (a summary, or the head of a table), or tag the cell `skip` "
                "if the service does not need it; metadata.promoter.max_output_mb raises the "
                "limit",
                ename="OutputLimitExceeded",
            )
        elif isinstance(exc, CellTimeoutError):
            error = ExecutionError(
                f"the cell did not finish within {self.timeout:g} s",
                location=notebook.at(cell),
                hint="make the cell faster, or raise the limit with --timeout",
                ename="TimeoutError",
            )
        elif isinstance(exc, DeadKernelError):
            error = ExecutionError(
                "the kernel died while running this cell" + _stderr_tail(self._stderr),
                location=notebook.at(cell),
                hint="the cell exits the Python process (os._exit, a crash in a C "
                "extension, or memory exhausted)",
                ename="DeadKernelError",
            )
        elif isinstance(exc, RuntimeError):  # kernel failed to start, or similar
            return ExecutionError(
                f"the kernel could not run the notebook: {exc}" + _stderr_tail(self._stderr),
                location=notebook.at(),
                hint="check that ipykernel is installed in this Python environment",
            )
        else:
            return exc
        return _with_executed(error, _read(self._output))


# IPython's `exit()` and `quit()` only ask Jupyter to close the kernel, which then dies a moment
# later, at whichever cell runs next: in the run they end it at once, as in a script (and as the
# service, where they are Python's, does).
_EXIT_AS_IN_A_SCRIPT = """
def __promoter_exit__(code=None):
    raise SystemExit(code)


exit = quit = __promoter_exit__
get_ipython().user_ns_hidden.update(exit=exit, quit=quit)
del __promoter_exit__
"""


# The modules the kernel loaded for itself, so that those the notebook's code loaded are known.
_MODULES_BEFORE = "\n__promoter_modules_before__ = set(__import__('sys').modules)\n"


def _instrumented(
    notebook: Notebook, response: ResponseExpression, parameter_names: list[str], all_cells: bool
) -> Any:
    import nbformat

    new_cell: Callable[..., Any] = nbformat.v4.new_code_cell
    # from_dict: an upgraded nbformat 3 notebook is a different NotebookNode class than papermill
    # expects.
    node = nbformat.from_dict(copy.deepcopy(dict(notebook.node)))
    node.cells[response.cell.index].source = _assign_response(response.source, response.last)
    observer = observer_code(project_root(notebook))
    first = observer + _EXIT_AS_IN_A_SCRIPT + _MODULES_BEFORE
    cells = [new_cell(first, id=OBSERVER_CELL_ID)]
    for cell, copied in zip(notebook.cells, node.cells, strict=True):
        if cell.role is Role.SKIP and not all_cells:
            continue  # what is not promoted does not run
        cells.append(copied)
        if cell is notebook.parameters_cell:
            code = _capture_parameters_code(parameter_names)
            cells.append(new_cell(code, id=_CAPTURE_PARAMS_ID))
        elif cell is notebook.response_cell:
            cells.append(new_cell(_capture_response_code(), id=_CAPTURE_RESPONSE_ID))
    node.cells = cells
    return node


def _assign_response(source: str, last: Any) -> str:
    import ast

    if isinstance(last, ast.AnnAssign) and isinstance(last.target, ast.Name):
        return f"{source.rstrip()}\n{_RESPONSE_VAR} = {last.target.id}\n"
    segment = ast.get_source_segment(source, last) or ""
    rest = "".join(source_lines(source, keepends=True)[last.end_lineno :])
    return f"{prefix_before(source, last)}{_RESPONSE_VAR} = ({segment})\n{rest}"


def _capture_parameters_code(names: list[str]) -> str:
    values = ", ".join(f"{name!r}: {name}" for name in names)
    return f"__promoter_parameters__ = {{{values}}}\n"


def _capture_response_code() -> str:
    return (
        "# Injected by promoter: record the response as JSON (not part of the notebook).\n"
        "__promoter_modules__ = sorted({m.partition('.')[0] for m in __import__('sys').modules\n"
        "                               if m not in __promoter_modules_before__})\n"
        "__promoter_ns__ = {}\n"
        f"exec({jsonable_loader_code()!r}, __promoter_ns__)\n"
        "__promoter_convert__ = __promoter_ns__['load_package'](\n"
        f"    {JSONABLE_PACKAGE!r}, {jsonable_sources()!r}\n"
        ").to_jsonable\n"
        "__import__('IPython').display.display(\n"
        f"    {{{CAPTURE_MIME!r}: {{\n"
        f"        'response': __promoter_convert__({_RESPONSE_VAR}),\n"
        f"        'kind': type({_RESPONSE_VAR}).__module__ + '.' "
        f"+ type({_RESPONSE_VAR}).__qualname__,\n"
        "        'parameters': {k: __promoter_convert__(v, 'parameter ' + k)\n"
        "                       for k, v in __promoter_parameters__.items()},\n"
        f"        'files': {observed_code()},\n"
        "        'modules': __promoter_modules__,\n"
        "    }}, raw=True)\n"
    )


def _captured(notebook: Notebook, executed: Any) -> dict[str, Any]:
    for cell in executed.cells:
        if cell.get("id") != _CAPTURE_RESPONSE_ID:
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if CAPTURE_MIME in data:
                return dict(data[CAPTURE_MIME])
    stopped = _failed_cell(executed)
    if stopped:  # `raise SystemExit(0)`: the kernel stops the run without reporting an error
        error = next(o for o in stopped.outputs if o.get("output_type") == "error")
        raise _with_executed(
            _cell_error(notebook, stopped, str(error.get("ename")), str(error.get("evalue"))),
            executed,
        )
    raise ExecutionError(
        "the notebook ran but its response was not recorded",
        hint="this is a bug in promoter; please report it with the notebook",
    )


#: Hints for exceptions that are not bugs in the cell's logic.
_HINTS = {
    "SystemExit": "the cell ends the run (sys.exit, exit(), raise SystemExit): a promoted cell "
    "must run to its end; remove the exit, or tag the cell `skip`",
    "KeyboardInterrupt": "the cell raised KeyboardInterrupt (an interrupted loop, or raised on "
    "purpose): a promoted cell must run to its end",
    "UsageError": "an IPython magic failed; fix it, or tag the cell `skip` (magics are not "
    "promoted)",
}
_DEFAULT_HINT = (
    "the notebook fails when papermill runs it from top to bottom; "
    "fix the cell (restart the kernel and run all cells in Jupyter to reproduce)"
)


#: For exceptions IPython reports without a traceback (an exit, a failing magic): the lines
#: that can raise them, so the one such line of the cell can be named.
_RAISING_LINES = {
    "SystemExit": r"\b(sys\.exit|exit|quit)\s*\(|\braise\s+SystemExit\b",
    "KeyboardInterrupt": r"\braise\s+KeyboardInterrupt\b",
    "UsageError": r"^\s*%",
}


def _raising_line(cell: Cell, ename: str, evalue: str) -> int | None:
    """The cell's one line that can raise ``ename``, when exactly one can (else ``None``)."""
    magic = re.search(r"`(%%?[^`\s]+)`", evalue) if ename == "UsageError" else None
    pattern = rf"^\s*{re.escape(magic.group(1))}(\s|$)" if magic else _RAISING_LINES.get(ename)
    if pattern is None:
        return None
    lines = source_lines(cell.source)
    found = [n for n, text in enumerate(lines, 1) if re.search(pattern, text)]
    return found[0] if len(found) == 1 else None


def _cell_error(
    notebook: Notebook, executed_cell: Any, ename: str, evalue: str, line: int | None = None
) -> ExecutionError:
    cell = _original(notebook, executed_cell)
    if cell is not None and line is None:
        line = _raising_line(cell, ename, evalue)
    evalue = " ".join(evalue.split())[:500]
    return ExecutionError(
        f"{ename}: {evalue}" if evalue else ename,
        location=notebook.at(cell, line) if cell else Location(notebook.path),
        hint=_HINTS.get(ename, _DEFAULT_HINT),
        ename=ename,
        evalue=evalue,
    )


def _read(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None


def _with_executed(error: E, executed: Any) -> E:
    error.executed = executed
    return error


def _original(notebook: Notebook, executed_cell: Any) -> Cell | None:
    cell_id = executed_cell.get("id")
    if cell_id == _CAPTURE_RESPONSE_ID:
        return notebook.response_cell
    if cell_id == _CAPTURE_PARAMS_ID or "injected-parameters" in executed_cell.get(
        "metadata", {}
    ).get("tags", []):
        return notebook.parameters_cell
    return next((c for c in notebook.cells if c.id == cell_id), None)


def _execution_error(
    notebook: Notebook, response: ResponseExpression, executed: Any, exc: Any
) -> ExecutionError | Any:
    executed_cell = _failed_cell(executed) or _cell_run(executed, exc.exec_count)
    cell = _original(notebook, executed_cell) if executed_cell else None
    traceback = _ANSI.sub("", "\n".join(exc.traceback or []))
    line = _line_in(traceback, exc.exec_count)
    ename, evalue = str(exc.ename), str(exc.evalue)
    if ename == "CellExecutionError" and not evalue:
        # IPython prints a failing magic's UsageError to stderr, not as an error output.
        ename, evalue = _stderr_error(executed_cell) or (ename, "the cell failed")
    cell_id = executed_cell.get("id")
    if cell_id == _CAPTURE_RESPONSE_ID:
        return _with_executed(
            ResponseError(
                " ".join(evalue.split())[:500],
                location=notebook.at(response.cell, response.last.lineno),
                hint="return JSON-like data: dicts, lists, numbers, strings, dataclasses, "
                "pydantic models, numpy or pandas values",
            ),
            executed,
        )
    if cell_id == _CAPTURE_PARAMS_ID or (cell is notebook.parameters_cell and cell_id != cell.id):
        return ParameterError(
            f"papermill could not set the parameters: {ename}: {' '.join(evalue.split())[:500]}",
            location=notebook.at(notebook.parameters_cell),
        )
    return _with_executed(_cell_error(notebook, executed_cell, ename, evalue, line), executed)


def _cell_run(executed: Any, count: int | None) -> Any:
    """The executed cell with execution count ``count`` (``{}`` when none)."""
    for cell in executed.cells if executed is not None and count is not None else []:
        if cell.get("execution_count") == count:
            return cell
    return {}


def _stderr_error(executed_cell: Any) -> tuple[str, str] | None:
    """``(ename, evalue)`` from the last ``Name: text`` line the cell wrote to stderr."""
    text = "".join(
        str(out.get("text", ""))
        for out in executed_cell.get("outputs", [])
        if out.get("name") == "stderr"
    )
    for line in reversed(_ANSI.sub("", text).splitlines()):
        match = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): ?(.*)$", line)
        if match:
            return match.group(1), match.group(2)
    return None


def _failed_cell(executed: Any) -> Any:
    # papermill prepends an error banner cell to a failed run, so its cell_index is off by one;
    # the cell with an error output is the one that failed.
    for cell in executed.cells if executed is not None else []:
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return cell
    return {}


def _line_in(traceback: str, exec_count: int | None) -> int | None:
    matches = _CELL_LINE.findall(traceback)
    for count, line in matches:
        if exec_count is not None and int(count) == exec_count:
            return int(line)
    return int(matches[0][1]) if matches else None


def _stderr_tail(path: Path) -> str:
    try:
        lines = [
            ln
            for ln in path.read_text(errors="replace").splitlines()
            if ln.strip() and "without encryption" not in ln and "Kernel is running" not in ln
        ]
    except OSError:
        return ""
    return (" (kernel stderr: " + " | ".join(lines[-3:])[:400] + ")") if lines else ""
