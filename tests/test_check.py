"""``promoter check``: finding notebooks, the four checks, exit codes, JUnit, GitHub annotations.

The end-to-end tests build a small repository of real notebooks (clean, broken, slow, untagged,
non-deterministic and stale) and run the real console script on it.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from promoter._check import CheckReport, NotebookResult, Outcome, Status
from promoter._cli import app
from promoter._discover import find_notebooks, has_promoter_tags
from promoter._exceptions import Location, UsageError
from promoter._notebook import cell_file_line
from promoter._reports import github_annotations, junit_xml
from tests.helpers import EXAMPLES, FIXTURES, git, run_cli

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
    for option in ("--jobs", "--timeout", "--exclude", "--format", "--junit-xml", "--report"):
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
    assert "cell 3 (id handler), line 2" in (failure.text or "")
    for case in cases:
        assert {"name", "classname", "time"} <= set(case.attrib)


def test_github_annotations_escape_and_point_at_the_line() -> None:
    [line] = github_annotations(_report())
    assert line.startswith("::error file=nbs/bad.ipynb,line=44,title=promoter check%3A ")
    message = line.split("::", 2)[2]
    assert "cell 3 (id handler), line 2: ValueError: no, 100%25%0Ahint: fix it" in message


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
    nb.cells[0].source += "\n\nEdited after the service was generated."
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
    assert '"id": "handler"' in "\n".join(raises_text[line : line + 10])
    assert "cell 3 (id handler), line 2: ValueError: x must be non-negative" in raises
    [slow] = [a for a in annotations if "file=notebooks/slow.ipynb" in a]
    assert "did not finish within 10 s" in slow
    [drift] = [a for a in annotations if "file=notebooks/stale.ipynb" in a]
    assert "promoter convert notebooks/stale.ipynb -o services/stale" in drift

    html = (repo / "out" / "html" / "notebooks__raises.html").read_text()
    assert "celltag_promoter-failed" in html and "x must be non-negative" in html
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


def test_named_untagged_notebook_is_checked(tmp_path: Path) -> None:
    shutil.copy(BAD / "empty_notebook.ipynb", tmp_path / "plain.ipynb")
    result = run_cli("check", tmp_path / "plain.ipynb")
    assert result.returncode == 1
    assert "no code cells" in result.stdout
