"""Clear failures: each way a notebook can fail names the cell and the exception, never a
traceback, and "bug in promoter" is kept for promoter's bugs (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, run_cli, write_notebook

# Kernels, Jupyter servers or the TypeScript toolchain: the full suite, not the edit loop.
pytestmark = pytest.mark.slow

FAILURES = FIXTURES / "failures"

# fixture -> (the failing cell's 0-based index, text the message must show); messages count
# cells from 1, as JupyterLab's status bar does
RUN_FAILURES = {
    "sys_exit": (3, "SystemExit: x is too large for this demo"),
    "exit_zero": (2, "SystemExit: 0"),
    # IPython's exit() only asks Jupyter to close the kernel, which died at a later cell.
    "exit_call": (2, "SystemExit"),
    "line_magic_fails": (2, "No module named 'no_such_extension_xyz'"),
    "unknown_magic": (2, "UsageError: Line magic function `%no_such_magic_xyz` not found"),
    "kernel_dies": (3, "the kernel died while running this cell"),
    "keyboard_interrupt": (2, "KeyboardInterrupt: stopped by the author"),
}
ANNOTATIONS = {
    "nonetype_annotation": "NoneType",
    "forward_reference": "Widget",
}


PAPERMILL_LOG_LINES = ("Unable to parse line", "Kernel died while", "Passed unknown parameter")


def _assert_clear(output: str) -> None:
    assert "Traceback" not in output
    assert "bug in promoter" not in output
    assert "internal error" not in output
    for line in PAPERMILL_LOG_LINES:  # papermill's and nbclient's own logging
        assert line not in output


@pytest.mark.parametrize("name", sorted(RUN_FAILURES))
def test_a_failing_run_names_the_cell_and_the_exception(name: str) -> None:
    cell, text = RUN_FAILURES[name]

    result = run_cli("inspect", FAILURES / f"{name}.ipynb")

    assert result.returncode in (1, 2), result.output
    assert f"cell {cell + 1} " in result.stderr, result.output
    assert text in result.stderr, result.output
    _assert_clear(result.output)


@pytest.mark.parametrize("name", sorted(RUN_FAILURES))
def test_check_reports_the_same_failure(name: str) -> None:
    cell, text = RUN_FAILURES[name]

    result = run_cli("check", FAILURES / f"{name}.ipynb", "--json")

    assert result.returncode == 1, result.output
    checks = json.loads(result.stdout)["notebooks"][0]["checks"]
    execute = next(o for o in checks if o["check"] == "execute")
    assert execute["status"] == "failed"
    assert execute["cell_index"] == cell
    assert text in execute["message"]
    _assert_clear(result.stderr)


@pytest.mark.parametrize("name", sorted(ANNOTATIONS))
def test_an_annotation_pydantic_cannot_build_is_clear(name: str) -> None:
    notebook = FAILURES / f"{name}.ipynb"

    for args in (("inspect",), ("inspect", "--json")):
        result = run_cli(*args, notebook)
        _assert_clear(result.output)
        assert result.returncode in (1, 2), result.output
        assert ANNOTATIONS[name] in result.stderr and "cell 2" in result.stderr


def test_papermill_parse_warnings_do_not_leak(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "from typing import Annotated\nfrom pydantic import Field", []),
        ("code", "top_k: Annotated[int, Field(ge=1,\n    le=10)] = 3", ["parameters"]),
        ("code", "{'k': top_k}", ["response"]),
    )

    result = run_cli("inspect", notebook)

    assert result.returncode == 0, result.output
    assert result.stderr == ""


def test_a_string_annotation_is_refused_with_the_fix() -> None:
    # A string in a type is a forward reference, which pydantic would evaluate as code
    # (issue 13): refused with the line and the fix, never mapped by evaluating it.
    result = run_cli("inspect", FAILURES / "nonetype_annotation.ipynb")

    assert result.returncode == 1, result.output
    assert "forward reference" in result.stderr and "line" in result.stderr


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [
        ('Annotated[int, Field(ge="a")] = 3', "'ge' must be coercible to an integer"),
        ('conlist(int, min_length="x") = [1]', "not supported between"),
    ],
)
def test_a_field_pydantic_cannot_build_is_refused_before_the_run(
    tmp_path: Path, annotation: str, shown: str
) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "from typing import Annotated\nfrom pydantic import Field, conlist", []),
        ("code", f"n = 1\nx: {annotation}", ["parameters"]),
        ("code", "{'x': x}", ["response"]),
    )

    result = run_cli("inspect", notebook, "--json")

    assert result.returncode == 1, result.output
    assert "pydantic cannot build the request field `x: " in result.stderr
    assert shown in result.stderr and "cell 2" in result.stderr and "line 2" in result.stderr
    _assert_clear(result.output)


def test_a_response_annotation_pydantic_cannot_build_falls_back_to_inference(
    tmp_path: Path,
) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "from typing import Annotated\nfrom pydantic import Field", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "result: Annotated[int, Field(ge='a')] = x", ["response"]),
    )

    result = run_cli("inspect", notebook, "--json")

    assert result.returncode == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["response_type"] == "int"
    assert any("pydantic cannot build the response" in w["message"] for w in shown["warnings"])
    _assert_clear(result.output)
