"""The reports of ``promoter check``: the summary table, GitHub Actions annotations and step
summary, JUnit XML and HTML notebooks.

Formatting only: the check itself (``_check``) produces a ``CheckReport``; the CLI and CI
integrations choose how to show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promoter.frontends.check import CHECKS, CheckReport, NotebookResult, Outcome, Status
from promoter.running.execute import CAPTURE_CELL_IDS

__all__ = [
    "github_annotations",
    "junit_xml",
    "markdown_summary",
    "summary_lines",
    "write_html_reports",
]

_MARKS = {Status.PASSED: "ok", Status.FAILED: "FAIL", Status.SKIPPED: "-"}
_MD_MARKS = {Status.PASSED: "✅", Status.FAILED: "❌", Status.SKIPPED: "-"}


def summary_lines(report: CheckReport, width: int = 80) -> list[str]:
    """The summary table as plain lines that fit ``width`` columns.

    One row per notebook: a mark per check (``ok``, ``FAIL``, ``-``), the seconds, then the
    notebook. The name comes last so it is never cut: one too long for the line continues on
    the next, broken after a ``/``.
    """
    widths = [len(c) for c in CHECKS]
    head = " ".join([*CHECKS, "seconds"]) + "  "
    lines = [head + "notebook"]
    for result in report.results:
        if result.skipped is not None:
            cells = ["untagged".ljust(sum(widths) + len(widths) - 1), " " * len("seconds")]
        else:
            marks = [_MARKS[o.status] if (o := result.outcome(c)) else "" for c in CHECKS]
            cells = [m.ljust(w) for m, w in zip(marks, widths, strict=True)]
            cells.append(f"{result.seconds:>{len('seconds')}.1f}")
        prefix = " ".join(cells) + "  "
        name = _wrapped(result.path.as_posix(), max(width - len(prefix), 20))
        lines.append(prefix + name[0])
        lines.extend(" " * len(prefix) + rest for rest in name[1:])
    return lines


def _wrapped(path: str, width: int) -> list[str]:
    """``path`` in lines of at most ``width``, broken only after a ``/``."""
    parts = [p + "/" for p in path.split("/")[:-1]] + [path.rsplit("/", 1)[-1]]
    lines = [""]
    for part in parts:
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return lines


def markdown_summary(report: CheckReport) -> str:
    """A Markdown summary for GitHub Actions' ``$GITHUB_STEP_SUMMARY``: table, then failures."""
    lines = [
        "### promoter check",
        "",
        "| notebook | " + " | ".join(CHECKS) + " | seconds |",
        "|---|" + "---|" * len(CHECKS) + "---:|",
    ]
    for result in report.results:
        name = f"`{_md(result.path.as_posix())}`"
        if result.skipped is not None:
            lines.append(f"| {name} | untagged |" + " |" * len(CHECKS))
            continue
        marks = [_MD_MARKS[o.status] if (o := result.outcome(c)) else "" for c in CHECKS]
        lines.append(f"| {name} | " + " | ".join(marks) + f" | {result.seconds:.1f} |")
    counts = ", ".join(f"{n} {status}" for status, n in report.counts().items() if n)
    lines += ["", f"**{counts or 'no notebooks'}** in {report.seconds:.1f} s", ""]
    for result in report.failed:
        for outcome in result.failures:
            where = str(outcome.location) or result.path.as_posix()
            lines.append(f"- **{outcome.check}** `{_md(where)}`: {_md(outcome.message)}")
            if outcome.hint:
                lines.append(f"  <br>hint: {_md(outcome.hint)}")
    return "\n".join(lines).rstrip() + "\n\n"


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or list item (one line, no table breaks, no HTML)."""
    text = " ".join(text.split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace("`", "'")


def github_annotations(report: CheckReport) -> list[str]:
    """GitHub Actions workflow commands: one ``::error`` per failed check, pointing at the file.

    The line is the line of the ``.ipynb`` file that holds the failing source line (the element
    of the cell's ``source`` array), else where the failing cell starts, when known.
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
    node.cells = [c for c in node.cells if c.get("id") not in CAPTURE_CELL_IDS]
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
