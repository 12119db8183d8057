"""The ``promoter`` command line: a thin Typer + Rich skin over the library API."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from rich.console import Console

    from promoter._api import Conversion, Inspection

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="promoter",
    help="Promote a tagged Jupyter notebook into a tested FastAPI service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Rich help: option panels, and argument names shown as NOTEBOOKS... (not {notebooks}...).
    rich_markup_mode="rich",
)


class _Command(TyperCommand):
    """A command whose usage line reads as click writes it: ``NOTEBOOK...``, ``[PATH]...``.

    Typer wraps required arguments in braces (``{NOTEBOOK}...``), which reads like a template
    placeholder left unfilled.
    """

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage pieces, required arguments without braces."""
        pieces = super().collect_usage_pieces(ctx)
        return [re.sub(r"^\{(.*)\}", r"\1", piece) for piece in pieces]


Debug = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")]
Timeout = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds any one notebook cell may run.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Generated = Annotated[
    int,
    typer.Option(
        "--generated",
        min=0,
        help="Request bodies generated from each request model (Hypothesis) the service must "
        "answer as the notebook does, besides the defaults and examples; each costs one "
        "notebook run.",
    ),
]
IsolatedEnv = Annotated[
    bool,
    typer.Option(
        "--isolated-env/--no-isolated-env",
        help="Prove the service in a fresh environment built from its own pins (uv; cached), "
        "and ship its requirements.lock. --no-isolated-env proves it in promoter's own "
        "environment (no network needed; the dependencies are then not proven).",
    ),
]
Strict = Annotated[
    bool,
    typer.Option(
        "--strict", help="Fail when an answer changes from run to run (default: a warning)."
    ),
]


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        from promoter import __version__

        typer.echo(f"promoter {__version__}")
        raise typer.Exit()


# Each command's --help ends with an example (its epilog).
_INSPECT_EXAMPLE = (
    "Examples: `promoter inspect notebooks/price.ipynb` (runs it once); "
    "`promoter inspect notebooks/price.ipynb --static --json` (no kernel, for machines)."
)
_CONVERT_EXAMPLE = (
    "Examples: `promoter convert notebooks/price.ipynb -o services/price`; "
    "`promoter convert notebooks/*.ipynb -o services/api --k8s` (one route per notebook)."
)
_SERVE_EXAMPLE = (
    "Example: `promoter serve notebooks/price.ipynb --port 8000`, "
    "then open http://127.0.0.1:8000/docs."
)
_CHECK_EXAMPLE = (
    "Examples: `promoter check notebooks/ -j 2 --format github --junit-xml reports/promoter.xml`; "
    "`promoter check --static` (no kernel: tags and stale services, as the pre-commit hook)."
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """Promote a tagged Jupyter notebook into a tested FastAPI service."""


def _run(debug: bool, action: Callable[[], T]) -> T:
    """Call the library; render its errors as one clear message (tracebacks only with --debug).

    Any live progress display must be opened inside ``action``: it is then closed (and erased)
    before the message prints, so the message starts on a line of its own.
    """
    from promoter._exceptions import PromoterError

    try:
        return action()
    except PromoterError as exc:
        if debug:
            raise
        _console(stderr=True).print(f"[bold red]error:[/] {_escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        _console(stderr=True).print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as exc:  # a promoter bug: still one message, never a traceback
        if debug:
            raise
        _console(stderr=True).print(
            f"[bold red]internal error:[/] {_escape(type(exc).__name__)}: {_escape(str(exc))}\n"
            "  run again with --debug for the traceback, and please report it"
        )
        raise typer.Exit(1) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _run_with_progress(
    debug: bool, enabled: bool, action: Callable[[Callable[[str, int, int], None] | None], T]
) -> T:
    """``_run`` with a live progress bar (on a terminal) around ``action``, not around errors."""

    def run() -> T:
        with _progress(enabled) as progress:
            return action(progress)

    return _run(debug, run)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A live progress bar on a terminal, while kernels run."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    tasks: dict[str, Any] = {}
    columns = (
        SpinnerColumn(),
        TextColumn("running {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cells"),
    )
    with Progress(*columns, console=_console(stderr=True), transient=True) as progress:

        def update(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        yield update


@app.command(cls=_Command, epilog=_INSPECT_EXAMPLE)
def inspect(
    notebook: Annotated[
        Path, typer.Argument(metavar="NOTEBOOK", help="The notebook (.ipynb) to inspect.")
    ],
    as_json: JsonOut = False,
    static: Annotated[
        bool,
        typer.Option("--static", help="Do not run the notebook (no response schema; fast)."),
    ] = False,
    timeout: Timeout = 600,
    debug: Debug = False,
) -> None:
    """Show cell roles, request fields, the response schema and warnings."""
    import promoter

    result = _run_with_progress(
        debug,
        not as_json and not static and sys.stderr.isatty(),
        lambda progress: promoter.inspect(
            notebook, execute=not static, timeout=timeout, on_progress=progress
        ),
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    _show_inspection(result)


def _show_inspection(result: Inspection) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    nb = result.notebook
    console.print(f"[bold]{_escape(str(nb.path))}[/] -> POST {_escape(nb.route)}")
    if nb.summary:
        console.print(f"  {_escape(nb.summary)}")
    # Plain fixed-width lines, not a Table: a long notebook would spend most of the command's
    # time in table layout (0.2 s for 500 cells).
    console.print("[bold]Cells[/]")
    # Numbered from 1, as JupyterLab's status bar counts cells.
    rows = [
        f"  {c.index + 1:>4}  {c.id:<12.12}  {c.role.value:<10}  {c.preview()}" for c in nb.cells
    ]
    console.print(Text("\n".join(rows)))
    fields = Table("field", "type", "default", "description", title="Request", title_justify="left")
    for p in result.request.parameters:
        default = json.dumps(p.default, default=list, ensure_ascii=False)
        if p.default_source is not None and p.default is None:  # --static: not run, so unknown
            default = f"{p.default_source} (computed)"
        fields.add_row(p.name, _escape(p.annotation), _escape(default), p.description or "")
    console.print(fields)
    if result.response is not None:
        console.print(f"[bold]Response[/]: {_escape(result.response.root)}")
        for cls in result.response.classes:
            body = ", ".join(f"{f.key}: {f.annotation}" for f in cls.fields)
            console.print(f"  {cls.name}({_escape(body)})")
        for shape in result.response.shapes:
            console.print(f"  [dim]read {_escape(str(shape))}[/]")
    _show_findings(console, result.warnings, result.dropped)


def _show_findings(console: Console, warnings: Any, dropped: Any) -> None:
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {_escape(str(warning))}")
    for drop in dropped:
        where = _escape(f"({drop.location})")
        console.print(f"[dim]dropped {_escape(drop.why)}: {_escape(drop.what)}  {where}[/]")


@app.command(cls=_Command, epilog=_CONVERT_EXAMPLE)
def convert(
    notebooks: Annotated[
        list[Path],
        typer.Argument(metavar="NOTEBOOK", help="One or more notebooks; one route each."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The service folder to write.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Overwrite generated files you edited (the old folder is backed up)."
        ),
    ] = False,
    k8s: Annotated[bool, typer.Option("--k8s", help="Also write Kubernetes manifests.")] = False,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Service name (package and image); default from the notebook."),
    ] = None,
    timeout: Timeout = 600,
    strict: Strict = False,
    isolated_env: IsolatedEnv = True,
    generated: Generated = 2,
    as_json: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Generate a FastAPI service (app, models, tests, Dockerfile) from notebooks."""
    import promoter

    result = _run_with_progress(
        debug,
        not as_json and sys.stderr.isatty(),
        lambda progress: promoter.convert(
            notebooks,
            out,
            force=force,
            k8s=k8s,
            name=name,
            timeout=timeout,
            on_progress=progress,
            strict=strict,
            isolated=isolated_env,
            generated=generated,
        ),
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    _show_conversion(result)


def _show_conversion(result: Conversion) -> None:
    console = _console()
    console.print(f"[bold green]generated[/] {_escape(str(result.out_dir))}")
    for inspection in result.inspections:
        nb = inspection.notebook
        promoted = [c for c in nb.cells if c.promoted]
        fields = ", ".join(p.name for p in inspection.request.parameters) or "(none)"
        console.print(
            f"  POST {_escape(nb.route)}  <- {_escape(nb.path.name)}: {len(promoted)} cells "
            f"promoted, {len(nb.cells) - len(promoted)} not; fields: {_escape(fields)}"
        )
        console.print(f"  POST {_escape(nb.route)}/jobs  <- the same request, as a job (202)")
    console.print("  GET /jobs/{id}, DELETE /jobs/{id}, GET /jobs  <- poll, cancel, list jobs")
    status = "reproduces" if result.reproduces else "differs from"
    console.print(f"  the service {status} the notebook's default answer")
    for step in result.steps:
        console.print(f"  proof: {step.name} {step.status} ({_escape(step.detail)})")
    if result.backup:
        console.print(f"  previous version kept in {_escape(str(result.backup))}")
    data = [f for f in result.data_files if not f.endswith(".py")]
    modules = [f for f in result.data_files if f.endswith(".py")]
    if data:
        console.print(f"  data files copied (the notebook reads them): {_escape(', '.join(data))}")
    if modules:
        shown = ", ".join(modules)
        console.print(f"  local modules copied (the notebook imports them): {_escape(shown)}")
    console.print(
        f"  {len(result.files)} files in {result.seconds:.1f} s "
        f"({result.kernel_seconds:.1f} s running notebooks)"
    )
    _show_findings(console, result.warnings, [d for i in result.inspections for d in i.dropped])
    console.print(f"  next: cd {_escape(str(result.out_dir))} && uvicorn app.main:app")


@app.command(cls=_Command, epilog=_SERVE_EXAMPLE)
def serve(
    notebook: Annotated[Path, typer.Argument(metavar="NOTEBOOK", help="The notebook to serve.")],
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    reload: Annotated[
        bool, typer.Option("--reload/--no-reload", help="Regenerate when the notebook is saved.")
    ] = True,
    timeout: Timeout = 600,
    debug: Debug = False,
) -> None:
    """Convert to a temporary folder and serve it, regenerating when the notebook is saved."""
    from promoter.frontends.serve import serve as serve_notebook

    console = _console(stderr=True)

    def report(message: str) -> None:
        console.print(_escape(message))

    _run(
        debug,
        lambda: serve_notebook(
            notebook, host=host, port=port, reload=reload, timeout=timeout, on_event=report
        ),
    )


def main() -> None:
    """Console-script entry point (also of ``python -m promoter``, whose usage says promoter)."""
    app(prog_name="promoter")


# --- promoter check ---------------------------------------------------------------------------


CheckPaths = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="PATH",
        help="Notebooks, or folders searched recursively for *.ipynb (default: here).",
        show_default=False,
    ),
]
Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs", "-j", min=1, help="Notebooks checked at once (default: number of CPUs)."
    ),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        metavar="GLOB",
        help="gitignore-style glob of files or folders to leave out (repeatable).",
    ),
]
SkipUntagged = Annotated[
    bool,
    typer.Option(
        "--skip-untagged",
        help="Skip named notebooks without promoter tags too (folders always skip them).",
    ),
]
OutputFormat = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="text|github",
        help="text: summary table; github: GitHub Actions annotations, then the table.",
    ),
]
Static = Annotated[
    bool,
    typer.Option(
        "--static",
        help="No kernel: check the tags and stale services only (fast; the pre-commit hook).",
    ),
]
Changed = Annotated[
    bool,
    typer.Option(
        "--changed",
        help="The paths are changed files (pre-commit's): check the notebooks among them and "
        "those whose services carry a changed data file; ignore other files.",
    ),
]
AllCells = Annotated[
    bool,
    typer.Option(
        "--all-cells",
        help="Run every cell, `skip` cells and those after `response` too (by default only "
        "what is promoted runs).",
    ),
]
JunitXml = Annotated[
    Path | None,
    typer.Option("--junit-xml", metavar="FILE", help="Also write a JUnit XML report."),
]
ReportDir = Annotated[
    Path | None,
    typer.Option(
        "--report",
        metavar="DIR",
        help="Write each executed notebook as HTML, the failing cell highlighted.",
    ),
]


@app.command(cls=_Command, epilog=_CHECK_EXAMPLE)
def check(
    paths: CheckPaths = None,
    jobs: Jobs = None,
    timeout: Timeout = 600,
    strict: Strict = False,
    exclude: Exclude = None,
    skip_untagged: SkipUntagged = False,
    static: Static = False,
    changed: Changed = False,
    all_cells: AllCells = False,
    output_format: OutputFormat = "text",
    junit_xml: JunitXml = None,
    report: ReportDir = None,
    isolated_env: IsolatedEnv = True,
    generated: Generated = 2,
    as_json: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Check notebooks for CI: tags, a papermill run, service fidelity, stale services.

    Exit status: 0 all clean, 1 findings, 2 usage error. With $GITHUB_STEP_SUMMARY set (GitHub
    Actions), a Markdown summary is appended to that file.
    """
    from promoter.building.proof import ProofOptions
    from promoter.frontends import check as _check

    if output_format not in ("text", "github"):
        _console(stderr=True).print(
            f"[bold red]error:[/] --format must be text or github, not {_escape(output_format)}"
        )
        raise typer.Exit(2)

    def run() -> _check.CheckReport:
        with _check_progress(live=not as_json and sys.stderr.isatty()) as hooks:
            return _check.check(
                paths or [Path(".")],
                jobs=jobs,
                timeout=timeout,
                exclude=exclude or [],
                skip_untagged=skip_untagged,
                all_cells=all_cells,
                strict=strict,
                execute=not static,
                proof=ProofOptions(isolated=isolated_env, generated=generated),
                changed=changed,
                **hooks,
            )

    result = _run(debug, run)
    _write_reports(result, junit_xml, report, debug)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        if output_format == "github":
            from promoter.frontends.reports import github_annotations

            for line in github_annotations(result):
                typer.echo(line)
        _show_check(result, report)
    raise typer.Exit(result.exit_code)


def _write_reports(result: Any, junit_xml: Path | None, report: Path | None, debug: bool) -> None:
    from promoter.frontends import reports as _reports

    if junit_xml is not None:
        junit_xml.parent.mkdir(parents=True, exist_ok=True)
        junit_xml.write_text(_reports.junit_xml(result), encoding="utf-8")
    if report is not None:
        _run(debug, lambda: _reports.write_html_reports(result, report))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # GitHub Actions shows this file on the run's summary page
        with open(summary, "a", encoding="utf-8") as file:
            file.write(_reports.markdown_summary(result))


@contextmanager
def _check_progress(live: bool) -> Iterator[dict[str, Any]]:
    """Live bars per notebook on a terminal; one plain line per finished notebook in CI logs."""
    console = _console(stderr=True)
    if not live:
        yield {"on_result": lambda result: console.print(_check_line(result))}
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        overall = progress.add_task("checked", total=None)
        tasks: dict[str, Any] = {}

        def on_start(paths: list[Path]) -> None:
            progress.update(overall, total=len(paths))

        def on_progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"running {_escape(name)}", total=total)
            progress.update(tasks[name], completed=done, total=total)

        def on_result(result: Any) -> None:
            task = tasks.pop(result.path.as_posix(), None)
            if task is not None:
                progress.remove_task(task)
            if result.skipped is None:
                progress.advance(overall)
            progress.console.print(_check_line(result))

        yield {"on_start": on_start, "on_progress": on_progress, "on_result": on_result}


def _check_line(result: Any) -> str:
    name = _escape(result.path.as_posix())
    if result.skipped is not None:
        return f"[dim]skip[/] {name}: {_escape(result.skipped)}"
    if result.failures:
        first = result.failures[0]
        return f"[bold red]FAIL[/] {name} ({result.seconds:.1f} s): {_escape(str(first))}"
    return f"[green]ok[/]   {name} ({result.seconds:.1f} s)"


def _show_check(result: Any, report: Path | None) -> None:
    from rich.text import Text

    from promoter.frontends.reports import summary_lines

    console = _console()
    console.print("[bold]promoter check[/]")
    # Plain lines, the name last: a long name continues after a `/`, never mid-word.
    for line in summary_lines(result, width=console.width):
        text = Text(line)
        text.highlight_words(["FAIL"], "bold red")
        text.highlight_regex(r"(?<!\S)ok(?!\S)", "green")
        console.print(text)
    for nb in result.results:
        for warning in nb.warnings:
            console.print(f"[yellow]warning:[/] {_escape(warning)}")
    for nb in result.failed:
        for outcome in nb.failures:
            console.print(
                f"[bold red]{outcome.check}[/] {_escape(str(outcome.location) or str(nb.path))}"
            )
            console.print(f"  {_escape(outcome.message)}")
            if outcome.hint:
                console.print(f"  [dim]hint: {_escape(outcome.hint)}[/]")
    counts = result.counts()
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no notebooks"
    console.print(f"{summary} in {result.seconds:.1f} s (-j {result.jobs})")
    if report is not None:
        console.print(f"HTML reports in {_escape(str(report))}")
