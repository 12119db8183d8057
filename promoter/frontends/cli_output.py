"""What the ``promoter`` commands print: Rich text for inspections, conversions and checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from promoter._api import Conversion, Inspection

__all__ = [
    "check_line",
    "escape",
    "make_console",
    "show_check",
    "show_conversion",
    "show_findings",
    "show_inspection",
]


def make_console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def show_inspection(result: Inspection) -> None:
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    nb = result.notebook
    console.print(f"[bold]{escape(str(nb.path))}[/] -> POST {escape(nb.route)}")
    if nb.summary:
        console.print(f"  {escape(nb.summary)}")
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
        fields.add_row(p.name, escape(p.annotation), escape(default), p.description or "")
    console.print(fields)
    if result.response is not None:
        console.print(f"[bold]Response[/]: {escape(result.response.root)}")
        for cls in result.response.classes:
            body = ", ".join(f"{f.key}: {f.annotation}" for f in cls.fields)
            console.print(f"  {cls.name}({escape(body)})")
        for shape in result.response.shapes:
            console.print(f"  [dim]read {escape(str(shape))}[/]")
    show_findings(console, result.warnings, result.dropped)


def show_findings(console: Console, warnings: Any, dropped: Any) -> None:
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(str(warning))}")
    for drop in dropped:
        where = escape(f"({drop.location})")
        console.print(f"[dim]dropped {escape(drop.why)}: {escape(drop.what)}  {where}[/]")


def show_conversion(result: Conversion) -> None:
    console = make_console()
    console.print(f"[bold green]generated[/] {escape(str(result.out_dir))}")
    for inspection in result.inspections:
        nb = inspection.notebook
        promoted = [c for c in nb.cells if c.promoted]
        fields = ", ".join(p.name for p in inspection.request.parameters) or "(none)"
        console.print(
            f"  POST {escape(nb.route)}  <- {escape(nb.path.name)}: {len(promoted)} cells "
            f"promoted, {len(nb.cells) - len(promoted)} not; fields: {escape(fields)}"
        )
        console.print(f"  POST {escape(nb.route)}/jobs  <- the same request, as a job (202)")
    console.print("  GET /jobs/{id}, DELETE /jobs/{id}, GET /jobs  <- poll, cancel, list jobs")
    status = "reproduces" if result.reproduces else "differs from"
    console.print(f"  the service {status} the notebook's default answer")
    for step in result.steps:
        console.print(f"  proof: {step.name} {step.status} ({escape(step.detail)})")
    if result.backup:
        console.print(f"  previous version kept in {escape(str(result.backup))}")
    data = [f for f in result.data_files if not f.endswith(".py")]
    modules = [f for f in result.data_files if f.endswith(".py")]
    if data:
        console.print(f"  data files copied (the notebook reads them): {escape(', '.join(data))}")
    if modules:
        shown = ", ".join(modules)
        console.print(f"  local modules copied (the notebook imports them): {escape(shown)}")
    console.print(
        f"  {len(result.files)} files in {result.seconds:.1f} s "
        f"({result.kernel_seconds:.1f} s running notebooks)"
    )
    show_findings(console, result.warnings, [d for i in result.inspections for d in i.dropped])
    console.print(f"  next: cd {escape(str(result.out_dir))} && uvicorn app.main:app")


def check_line(result: Any) -> str:
    name = escape(result.path.as_posix())
    if result.skipped is not None:
        return f"[dim]skip[/] {name}: {escape(result.skipped)}"
    if result.failures:
        first = result.failures[0]
        return f"[bold red]FAIL[/] {name} ({result.seconds:.1f} s): {escape(str(first))}"
    return f"[green]ok[/]   {name} ({result.seconds:.1f} s)"


def show_check(result: Any, report: Path | None) -> None:
    from rich.text import Text

    from promoter.frontends.reports import summary_lines

    console = make_console()
    console.print("[bold]promoter check[/]")
    # Plain lines, the name last: a long name continues after a `/`, never mid-word.
    for line in summary_lines(result, width=console.width):
        text = Text(line)
        text.highlight_words(["FAIL"], "bold red")
        text.highlight_regex(r"(?<!\S)ok(?!\S)", "green")
        console.print(text)
    for nb in result.results:
        for warning in nb.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}")
    for nb in result.failed:
        for outcome in nb.failures:
            console.print(
                f"[bold red]{outcome.check}[/] {escape(str(outcome.location) or str(nb.path))}"
            )
            console.print(f"  {escape(outcome.message)}")
            if outcome.hint:
                console.print(f"  [dim]hint: {escape(outcome.hint)}[/]")
    counts = result.counts()
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no notebooks"
    console.print(f"{summary} in {result.seconds:.1f} s (-j {result.jobs})")
    if report is not None:
        console.print(f"HTML reports in {escape(str(report))}")
