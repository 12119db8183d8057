"""Regressions found by promoting published notebooks as a new user would (issue 11's study).

Each notebook here is written in the image of a public one (our own text, not theirs); the
study's table is in the lead's notes. The public notebook each test stands for is named in its
docstring.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_cli, write_notebook


def test_an_import_in_the_parameters_cell_is_named_with_a_setup_hint(tmp_path: Path) -> None:
    """papermill's sysexit1.ipynb shape: ``import sys`` first, tagged `parameters` by the user.

    The parameters cell's import runs in the notebook but only its assignments are promoted,
    so a handler using ``sys`` fails in the service. The message used to suggest untagging a
    `skip` cell, which the notebook does not have.
    """
    nb = write_notebook(
        tmp_path / "exit_report.ipynb",
        ("code", "import os\nlimit = 3", ["parameters"]),
        ("code", "names = sorted(os.listdir('.'))[:limit]", []),
        ("code", "len(names)", ["response"]),
    )

    for args in (("inspect", nb), ("inspect", nb, "--json"), ("convert", nb, "-o", tmp_path / "s")):
        result = run_cli(*args)

        assert result.returncode in (1, 2), result.output
        assert "Traceback" not in result.output
        assert "bug in promoter" not in result.output
        assert "exit_report.ipynb, cell 2" in result.output
        assert "line 1: `os` is not defined in the service" in result.output
        assert "the parameters cell (cell 1" in result.output
        assert "imports it" in result.output
        assert "move that import to a setup cell" in result.output
        assert "skip" not in result.output
