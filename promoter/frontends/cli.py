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
    pass

from promoter.frontends.cli_output import (
    check_line,
    escape,
    make_console,
    show_check,
    show_conversion,
    show_inspection,
)

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
        make_console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        make_console(stderr=True).print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as exc:  # a promoter bug: still one message, never a traceback
        if debug:
            raise
        make_console(stderr=True).print(
            f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}\n"
            "  run again with --debug for the traceback, and please report it"
        )
        raise typer.Exit(1) from None


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
    with Progress(*columns, console=make_console(stderr=True), transient=True) as progress:

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
    show_inspection(result)


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
    show_conversion(result)


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

    console = make_console(stderr=True)

    def report(message: str) -> None:
        console.print(escape(message))

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
        make_console(stderr=True).print(
            f"[bold red]error:[/] --format must be text or github, not {escape(output_format)}"
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
        show_check(result, report)
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
    console = make_console(stderr=True)
    if not live:
        yield {"on_result": lambda result: console.print(check_line(result))}
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
                tasks[name] = progress.add_task(f"running {escape(name)}", total=total)
            progress.update(tasks[name], completed=done, total=total)

        def on_result(result: Any) -> None:
            task = tasks.pop(result.path.as_posix(), None)
            if task is not None:
                progress.remove_task(task)
            if result.skipped is None:
                progress.advance(overall)
            progress.console.print(check_line(result))

        yield {"on_start": on_start, "on_progress": on_progress, "on_result": on_result}
