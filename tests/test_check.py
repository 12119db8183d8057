"""``promoter check``: finding notebooks, the four checks, exit codes, JUnit, GitHub annotations.

The end-to-end tests build a small repository of real notebooks (clean, broken, slow, untagged,
non-deterministic and stale) and run the real console script on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from promoter._exceptions import Location, UsageError
from promoter.frontends.check import CheckReport, NotebookResult, Outcome, Status
from promoter.frontends.cli import app
from promoter.frontends.discover import find_notebooks, has_promoter_tags
from promoter.frontends.reports import (
    github_annotations,
    junit_xml,
    markdown_summary,
    summary_lines,
)
from promoter.reading.locate import cell_file_line
from tests.helpers import EXAMPLES, FIXTURES, git, run_cli, write_notebook

BAD = FIXTURES / "bad"


def _tagged_notebook(
    handler: str, response: str, setup: str = "import math"
) -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_markdown_cell("# A fixture\n\nWritten by the test.", id="title"),
        nbformat.v4.new_code_cell(setup, id="setup"),
        nbformat.v4.new_code_cell("n = 1  # A number", id="params"),
        nbformat.v4.new_code_cell(handler, id="handler"),
        nbformat.v4.new_code_cell(response, id="response"),
    ]
    for cell, tag in zip(cells[1:], ["setup", "parameters", None, "response"], strict=True):
        if tag:
            cell.metadata["tags"] = [tag]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one notebook of each kind under notebooks/."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    shutil.copy(EXAMPLES / "loan_calculator.ipynb", nbs / "clean.ipynb")
    shutil.copy(EXAMPLES / "shipping_quote.ipynb", nbs / "stale.ipynb")
    shutil.copy(BAD / "cell_raises.ipynb", nbs / "raises.ipynb")
    shutil.copy(BAD / "two_response_cells.ipynb", nbs / "two_responses.ipynb")
    shutil.copy(BAD / "empty_notebook.ipynb", nbs / "untagged.ipynb")
    nbformat.write(_tagged_notebook("import time\ntime.sleep(60)", "{'n': n}"), nbs / "slow.ipynb")
    nbformat.write(
        _tagged_notebook("value = random.random() * n", "{'value': value}", "import random"),
        nbs / "random_value.ipynb",
    )
    (nbs / ".ipynb_checkpoints").mkdir()
    shutil.copy(BAD / "cell_raises.ipynb", nbs / ".ipynb_checkpoints" / "raises-checkpoint.ipynb")
    git(tmp_path, "init", "-q")
    return tmp_path


# --- fast: discovery, formats, CLI surface -----------------------------------------------------


def test_help() -> None:
    result = CliRunner().invoke(app, ["check", "--help"])
    assert result.exit_code == 0
    options = ("--jobs", "--timeout", "--exclude", "--format", "--junit-xml", "--report")
    for option in (*options, "--static"):
        assert option in result.output


def test_find_notebooks_skips_hidden_checkpoints_and_excludes(tmp_path: Path) -> None:
    for rel in [
        "a.ipynb",
        "sub/b.ipynb",
        "sub/deep/c.ipynb",
        ".hidden/d.ipynb",
        "x/.ipynb_checkpoints/a-checkpoint.ipynb",
        "node_modules/e.ipynb",
        "build/f.ipynb",
        "scratch/g.ipynb",
        "notes.txt",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    found = find_notebooks([tmp_path], exclude=["scratch/", "sub/deep"])
    assert [p.relative_to(tmp_path).as_posix() for p, _ in found] == ["a.ipynb", "sub/b.ipynb"]
    assert not any(named for _, named in found)
    by_name = find_notebooks([tmp_path], exclude=["b.ipynb"])
    assert [p.name for p, _ in by_name] == ["a.ipynb", "g.ipynb", "c.ipynb"]
    assert find_notebooks([tmp_path / "a.ipynb"]) == [(tmp_path / "a.ipynb", True)]


def test_find_notebooks_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        find_notebooks([tmp_path / "missing"])
    (tmp_path / "x.py").write_text("")
    with pytest.raises(UsageError):
        find_notebooks([tmp_path / "x.py"])


def test_promoter_tags_decide_what_a_folder_search_checks() -> None:
    assert has_promoter_tags(EXAMPLES / "iris_classifier.ipynb")
    assert has_promoter_tags(BAD / "no_parameters_cell.ipynb")  # has `response`: checked, fails
    assert not has_promoter_tags(BAD / "empty_notebook.ipynb")
    assert has_promoter_tags(BAD / "invalid_json.ipynb")  # unreadable: checked, fails


def test_cell_file_line_points_at_the_cell_in_the_json() -> None:
    path = BAD / "two_response_cells.ipynb"
    lines = path.read_text().splitlines()
    cells = json.loads(path.read_text())["cells"]
    for index, cell in enumerate(cells):
        line = cell_file_line(path, index)
        assert line is not None and lines[line - 1].strip() == "{"
        following = "\n".join(lines[line : line + 12])
        assert f'"id": "{cell["id"]}"' in following
    assert cell_file_line(path, len(cells)) is None
    assert cell_file_line(BAD / "invalid_json.ipynb", 99) is None


def test_cell_file_line_points_at_a_source_line_inside_the_cell(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("markdown", "# Title", []),
        ("code", "a = 1\nb = 2\nc = a / 0  # third\nd = 4", []),
    )
    lines = path.read_text().splitlines()
    third = cell_file_line(path, 1, 3)
    assert third is not None and '"c = a / 0  # third\\n"' in lines[third - 1]
    assert cell_file_line(path, 1) == cell_file_line(path, 1, 99)  # unknown line: the cell
    assert lines[(cell_file_line(path, 1) or 0) - 1].strip() == "{"
    # A source saved as one string (nbformat allows it) is on one JSON line.
    data = json.loads(path.read_text())
    data["cells"][1]["source"] = "a = 1\nb = 2\nc = a / 0"
    path.write_text(json.dumps(data, indent=1))
    line = cell_file_line(path, 1, 3)
    assert line is not None and '"source": "a = 1' in path.read_text().splitlines()[line - 1]


def test_a_papermill_parameters_tag_alone_is_not_a_promoter_notebook(tmp_path: Path) -> None:
    papermill = write_notebook(tmp_path / "report.ipynb", ("code", "day = 1", ["parameters"]))
    assert not has_promoter_tags(papermill)
    result = run_cli("check", tmp_path, "--json")
    assert result.returncode == 0, result.output
    [found] = json.loads(result.stdout)["notebooks"]
    assert found["status"] == "skipped"


def test_location_numbers_cells_from_one() -> None:
    location = Location(Path("nb.ipynb"), 2, "abc", 4)
    assert str(location) == "nb.ipynb, cell 3 (id abc), line 4"
    data = location.to_dict()
    assert (data["cell_index"], data["cell_number"]) == (2, 3)
    assert Location(Path("nb.ipynb")).to_dict()["cell_number"] is None


def _third_cell_breaks_the_contract(folder: Path) -> Path:
    return write_notebook(
        folder / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "y = x + 1", []),
        ("code", "z = (", []),  # the third cell, as JupyterLab's status bar counts
        ("code", "{'y': y}", ["response"]),
    )


@pytest.mark.slow
def test_the_cli_says_cell_3_for_the_third_cell(tmp_path: Path) -> None:
    notebook = _third_cell_breaks_the_contract(tmp_path)
    cell_id = nbformat.read(notebook, as_version=4).cells[2].id
    inspect = run_cli("inspect", "--static", notebook)
    assert inspect.returncode == 1
    assert f"{notebook}, cell 3 (id {cell_id}), line 1" in inspect.stderr
    checked = run_cli("check", "--static", notebook, "--format", "github")
    assert checked.returncode == 1, checked.output
    assert f"cell 3 (id {cell_id}), line 1" in checked.stdout
    data = json.loads(run_cli("check", "--static", notebook, "--json").stdout)
    contract = data["notebooks"][0]["checks"][0]
    assert (contract["cell_index"], contract["cell_number"]) == (2, 3)


@pytest.mark.slow
def test_static_check_runs_no_kernel(tmp_path: Path) -> None:
    good = write_notebook(
        tmp_path / "good.ipynb",
        ("code", "import sys\nsys.exit(3)", ["setup"]),  # would fail if it ran
        ("code", "x = 1", ["parameters"]),
        ("code", "{'x': x}", ["response"]),
    )
    result = run_cli("check", "--static", good, "--json")
    assert result.returncode == 0, result.output
    checks = {c["check"]: c for c in json.loads(result.stdout)["notebooks"][0]["checks"]}
    assert checks["contract"]["status"] == "passed"
    assert checks["execute"]["status"] == checks["fidelity"]["status"] == "skipped"
    assert "static" in checks["execute"]["message"]


def test_summary_fits_80_columns_and_never_cuts_a_name(tmp_path: Path) -> None:
    deep = tmp_path / "team_notebooks" / "customer_lifetime_value" / "experiments_2026"
    notebook = write_notebook(
        deep / "churn_probability_model.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "{'x': x}", ["response"]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "promoter", "check", "--static", "team_notebooks"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), proc.stdout
    # The name continues on the next lines, broken only after a `/`.
    first = next(i for i, line in enumerate(lines) if "team_notebooks/" in line)
    rest = [line.strip() for line in lines[first + 1 :] if line.startswith(" " * 20)]
    name = lines[first].split()[-1] + "".join(rest)
    assert name == notebook.relative_to(tmp_path).as_posix(), proc.stdout
    assert all(part.endswith("/") for part in [lines[first].split()[-1], *rest][:-1])


def test_summary_lines_break_long_names_after_a_slash() -> None:
    lines = summary_lines(_report(), width=64)
    assert lines[0].split() == ["contract", "execute", "fidelity", "drift", "seconds", "notebook"]
    assert lines[1].split() == ["ok", "FAIL", "-", "-", "1.5", "nbs/bad.ipynb"]
    assert lines[3].split() == ["untagged", "nbs/plain.ipynb"]
    name = "reports/quarterly/customer_lifetime_value_2026.ipynb"
    long = CheckReport((NotebookResult(Path(name), (Outcome("contract", Status.PASSED),)),), 1, 1)
    [_, first, *rest] = summary_lines(long, width=64)
    assert all(len(line) <= 64 for line in [first, *rest[:-1]])
    assert first.endswith(" reports/quarterly/") and [r.strip() for r in rest] == [name[18:]]


def test_github_step_summary_is_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    markdown = markdown_summary(_report())
    assert "| `nbs/bad.ipynb` | ✅ | ❌ | - | - | 1.5 |" in markdown
    assert "**1 passed, 1 failed, 1 skipped**" in markdown
    assert "- **execute** `nbs/bad.ipynb, cell 4 (id handler), line 2`: ValueError" in markdown
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    notebook = _third_cell_breaks_the_contract(tmp_path)
    assert run_cli("check", "--static", notebook).returncode == 1
    text = summary.read_text()
    assert text.startswith("earlier step\n### promoter check")
    assert "cell 3 (id " in text and "❌" in text


def _report() -> CheckReport:
    failed = NotebookResult(
        Path("nbs/bad.ipynb"),
        (
            Outcome("contract", Status.PASSED),
            Outcome(
                "execute",
                Status.FAILED,
                "ValueError: no, 100%",
                Location(Path("nbs/bad.ipynb"), 3, "handler", 2),
                "fix it",
                file_line=44,
            ),
            Outcome("fidelity", Status.SKIPPED, "the notebook did not run"),
            Outcome("drift", Status.SKIPPED, "no service"),
        ),
        1.5,
    )
    passed = NotebookResult(
        Path("nbs/good.ipynb"), tuple(Outcome(c, Status.PASSED) for c in ("contract", "execute")), 1
    )
    skipped = NotebookResult(Path("nbs/plain.ipynb"), skipped="no promoter tags")
    return CheckReport((failed, passed, skipped), 2.0, 2)


def test_junit_xml_shape() -> None:
    root = ET.fromstring(junit_xml(_report()))
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests", "")) == 4 + 2 + 4
    assert suite.get("failures") == "1" and suite.get("errors") == "0"
    assert int(suite.get("skipped", "")) == len([c for c in cases if c.find("skipped") is not None])
    [failed] = [c for c in cases if c.find("failure") is not None]
    assert (failed.get("classname"), failed.get("name")) == ("nbs.bad", "execute")
    failure = failed.find("failure")
    assert failure is not None and failure.get("message") == "ValueError: no, 100%"
    assert "cell 4 (id handler), line 2" in (failure.text or "")
    for case in cases:
        assert {"name", "classname", "time"} <= set(case.attrib)


def test_github_annotations_escape_and_point_at_the_line() -> None:
    [line] = github_annotations(_report())
    assert line.startswith("::error file=nbs/bad.ipynb,line=44,title=promoter check%3A ")
    message = line.split("::", 2)[2]
    assert "cell 4 (id handler), line 2: ValueError: no, 100%25%0Ahint: fix it" in message


def test_bad_format_and_missing_path_are_usage_errors(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["check", "--format", "xml", str(tmp_path)]).exit_code == 2
    result = run_cli("check", tmp_path / "missing")
    assert result.returncode == 2 and "no such file or folder" in result.stderr
    assert "Traceback" not in result.output


def test_empty_folder_is_clean(tmp_path: Path) -> None:
    result = run_cli("check", tmp_path, "--json")
    assert result.returncode == 0, result.output
    assert json.loads(result.stdout)["notebooks"] == []


# --- slow: real kernels ---------------------------------------------------------------------------


@pytest.mark.slow
def test_fixture_repository_reports_each_notebook(repo: Path) -> None:
    convert = run_cli("convert", "notebooks/stale.ipynb", "-o", "services/stale", cwd=repo)
    assert convert.returncode == 0, convert.output
    stale = repo / "notebooks" / "stale.ipynb"
    nb = nbformat.read(stale, as_version=4)
    # The title is the endpoint's OpenAPI summary: part of what the service is made of.
    nb.cells[0].source = nb.cells[0].source.replace("# Parcel", "# Edited parcel", 1)
    nbformat.write(nb, stale)

    result = run_cli(
        "check",
        "notebooks",
        "-j",
        "2",
        "--timeout",
        "10",
        # A changing answer warns and passes by default (as in convert, see test_determinism);
        # --strict makes random_value's fidelity fail.
        "--strict",
        "--format",
        "github",
        "--junit-xml",
        "out/junit.xml",
        "--report",
        "out/html",
        cwd=repo,
    )
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output

    suite = ET.parse(repo / "out" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    status: dict[tuple[str, str], str] = {}
    for case in suite.findall("testcase"):
        kind = next((child.tag for child in case), "passed")
        status[(case.get("file", ""), case.get("name", ""))] = kind
    checks = ("contract", "execute", "fidelity", "drift")

    def row(name: str) -> list[str]:
        return [status[(f"notebooks/{name}.ipynb", c)] for c in checks]

    assert row("clean") == ["passed", "passed", "passed", "skipped"]
    assert row("stale") == ["passed", "passed", "passed", "failure"]
    assert row("raises") == ["passed", "failure", "skipped", "skipped"]
    assert row("two_responses") == ["failure", "skipped", "skipped", "skipped"]
    assert row("slow") == ["passed", "failure", "skipped", "skipped"]
    assert row("random_value") == ["passed", "passed", "failure", "skipped"]
    assert row("untagged") == ["skipped"] * 4
    assert not any("checkpoint" in file for file, _ in status)

    annotations = [ln for ln in result.stdout.splitlines() if ln.startswith("::error ")]
    assert len(annotations) == 5
    raises_text = (repo / "notebooks" / "raises.ipynb").read_text().splitlines()
    [raises] = [a for a in annotations if "file=notebooks/raises.ipynb" in a]
    line = int(raises.split("line=")[1].split(",")[0])
    # At the failing source line (the handler's 2nd), not where the cell's JSON starts.
    assert raises_text[line - 1].strip().startswith('"    raise ValueError(')
    assert "cell 4 (id handler), line 2: ValueError: x must be non-negative" in raises
    [slow] = [a for a in annotations if "file=notebooks/slow.ipynb" in a]
    assert "did not finish within 10 s" in slow
    [drift] = [a for a in annotations if "file=notebooks/stale.ipynb" in a]
    assert "promoter convert notebooks/stale.ipynb -o services/stale" in drift

    html = (repo / "out" / "html" / "notebooks__raises.html").read_text()
    assert "celltag_promoter-failed" in html and "x must be non-negative" in html
    assert "raises.ipynb, cell 4 (id handler), line 2" in html  # the banner counts from 1
    assert not (repo / "out" / "html" / "notebooks__untagged.html").exists()

    # Regenerating with the printed command makes the service current again.
    again = run_cli("convert", "notebooks/stale.ipynb", "-o", "services/stale", cwd=repo)
    assert again.returncode == 0, again.output
    clean = run_cli(
        "check",
        "notebooks/stale.ipynb",
        "notebooks/clean.ipynb",
        "notebooks/untagged.ipynb",
        "--skip-untagged",
        "--json",
        cwd=repo,
    )
    assert clean.returncode == 0, clean.output
    data = json.loads(clean.stdout)
    assert (data["passed"], data["failed"], data["skipped"]) == (2, 0, 1)
    [stale_result] = [n for n in data["notebooks"] if n["notebook"].endswith("stale.ipynb")]
    assert {c["check"]: c["status"] for c in stale_result["checks"]}["drift"] == "passed"


@pytest.mark.slow
def test_annotation_points_at_the_failing_line_inside_the_cell(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "a = x\nb = a + 1\nc = b / 0\nd = c", []),
        ("code", "{'d': d}", ["response"]),
    )
    result = run_cli("check", notebook, "--format", "github", "--junit-xml", tmp_path / "j.xml")
    assert result.returncode == 1, result.output
    [annotation] = [ln for ln in result.stdout.splitlines() if ln.startswith("::error ")]
    line = int(annotation.split("line=")[1].split(",")[0])
    assert notebook.read_text().splitlines()[line - 1].strip() == '"c = b / 0\\n",'
    assert ", cell 2 (id " in annotation and "), line 3: ZeroDivisionError" in annotation
    [case] = [
        c for c in ET.parse(tmp_path / "j.xml").iter("testcase") if c.get("name") == "execute"
    ]
    assert case.get("line") == str(line)


def test_named_untagged_notebook_is_checked(tmp_path: Path) -> None:
    shutil.copy(BAD / "empty_notebook.ipynb", tmp_path / "plain.ipynb")
    result = run_cli("check", tmp_path / "plain.ipynb")
    assert result.returncode == 1
    assert "no code cells" in result.stdout


@pytest.mark.slow
def test_static_check_of_a_notebook_finds_its_stale_service_outside_a_repository(
    tmp_path: Path,
) -> None:
    """Issue 26: ``check NB --static`` said drift "-" where ``check FOLDER --static`` failed."""
    folder = tmp_path / "analysis"
    folder.mkdir()
    notebook = folder / "doubler.ipynb"
    nbformat.write(_tagged_notebook("y = n * 2", "{'y': y}"), notebook)
    convert = run_cli("convert", "doubler.ipynb", "-o", "doubler_service", cwd=folder)
    assert convert.returncode == 0, convert.stdout + convert.stderr
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[3].source = "y = n * 3"
    nbformat.write(nb, notebook)
    for named in ("doubler.ipynb", "."):
        result = run_cli("check", named, "--static", cwd=folder)
        assert result.returncode == 1, (named, result.stdout)
        assert "doubler_service is stale" in result.stdout, (named, result.stdout)
        assert "promoter convert doubler.ipynb -o doubler_service" in result.stdout
