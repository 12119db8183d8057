"""Regressions found by promoting published notebooks as a new user would (issue 11's study).

Each notebook here is written in the image of a public one (our own text, not theirs); the
study's table is in the lead's notes. The public notebook each test stands for is named in its
docstring.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from promoter.analysis.determinism import judge
from promoter.analysis.extract import Extraction, extract
from promoter.analysis.parameters import infer_request
from promoter.building.verify import Fidelity
from promoter.reading.notebook import read_notebook
from promoter.reading.source import response_expression
from tests.helpers import run_cli, write_notebook


@pytest.mark.slow
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


def _extract(tmp_path: Path, *cells: tuple[str, str, list[str]]) -> Extraction:
    nb = read_notebook(write_notebook(tmp_path / "nb.ipynb", *cells))
    return extract(nb, infer_request(nb), response_expression(nb))


def test_a_plot_of_a_reshaped_frame_mid_handler_is_dropped(tmp_path: Path) -> None:
    """The Data Science Handbook's pivot-table notebook (births by weekday): a handler cell
    draws ``frame.pivot_table(...).plot()`` between the steps the answer needs.

    The inner ``pivot_table`` call used to count as a change of the frame, so the drawing was
    kept: every request drew a figure (about 0.5 MB of RSS each) and the service, which does not
    depend on matplotlib, would fail where matplotlib is not installed. ``inplace=True`` still
    counts as a change.
    """
    ex = _extract(
        tmp_path,
        ("code", "import pandas as pd\nimport matplotlib.pyplot as plt", []),
        (
            "code",
            "sales = pd.DataFrame({'shop': ['a', 'b', 'a'], 'day': [1, 2, 3], 'n': [4, 5, 6]})",
            [],
        ),
        ("code", "min_n = 0", ["parameters"]),
        (
            "code",
            "sales['week'] = sales['day'] // 7\n"
            "sales.pivot_table('n', index='day', columns='shop', aggfunc='sum').plot()\n"
            "plt.ylabel('sales per day')\n"
            "sales.sort_values('n').plot(kind='bar')\n"
            "sales.sort_values('n', inplace=True)\n"
            "by_shop = sales[sales['n'] > min_n].groupby('shop')['n'].sum()",
            [],
        ),
        ("code", "by_shop.to_dict()", ["response"]),
    )
    code = "\n".join(b.code for b in (*ex.setup, *ex.handler))
    assert ".plot(" not in code and "plt." not in code, code
    assert "sales.sort_values('n', inplace=True)" in code
    assert "sales['week'] = sales['day'] // 7" in code
    dropped = [d.what for d in ex.dropped]
    assert "sales.pivot_table('n', index='day', columns='shop', aggfunc='sum').plot()" in dropped
    assert "sales.sort_values('n').plot(kind='bar')" in dropped
    assert "matplotlib" not in ex.modules


def test_the_unseeded_draws_are_named_by_the_cells_people_see(tmp_path: Path) -> None:
    """Kale's candies-sharing example: a helper draws ``random.randint`` unseeded, so the answer
    changes from run to run. The warning named the draw's cell counted from 0 ("cell 3") beside
    locations counted from 1 ("cell 4 (id ...)") in the same report.
    """
    nb = read_notebook(
        write_notebook(
            tmp_path / "sweets.ipynb",
            ("markdown", "# Sweets", []),
            ("code", "import random", []),
            ("code", "def grab(left):\n    return random.randint(1, left)", []),
            ("code", "total = 20", ["parameters"]),
            ("code", "first = grab(total)\n{'first': first}", ["response"]),
        )
    )
    fidelity = Fidelity("sweets", False, "response['first']: 3 != 9", model_error=None)

    warnings = judge(nb, fidelity, strict=False)

    message, where = warnings[0]
    assert "1 unseeded random draw(s) in cell 3;" in message, message
    assert where.cell_number == 5
    assert [(w, loc.cell_number, loc.line) for w, loc in warnings[1:]] == [
        ("unseeded randomness: `random.randint` without a seed before it", 3, 2)
    ]


@pytest.mark.slow
def test_a_nonetype_string_annotation_is_refused_pointing_at_none(tmp_path: Path) -> None:
    """papermill's complex_parameters.ipynb: ``c: "NoneType" = None`` in the parameters cell.

    It is refused (a string annotation is code), and the message says what to write instead:
    ``None`` (the name ``NoneType`` is not a builtin, so "write the type itself" led nowhere).
    """
    nb = write_notebook(
        tmp_path / "params.ipynb",
        ("code", 'rate: float = 0.5  # A rate\nnote: "NoneType" = None', ["parameters"]),
        ("code", "{'rate': rate}", ["response"]),
    )

    result = run_cli("inspect", nb)

    assert result.returncode in (1, 2), result.output
    assert "Traceback" not in result.output
    assert "params.ipynb, cell 1" in result.stderr and "line 2" in result.stderr
    assert "unsupported annotation `'NoneType'`" in result.stderr
    assert "write `None`, or `Literal[...]`" in result.stderr


@pytest.mark.slow
def test_an_exit_and_a_failing_magic_are_named_by_their_line(tmp_path: Path) -> None:
    """papermill's sysexit1.ipynb and line_magic_error.ipynb: IPython reports ``SystemExit`` and
    a magic's ``UsageError`` without a traceback, so the message named the cell but no line.
    The one line of the cell that can raise them is named now.
    """
    exits = write_notebook(
        tmp_path / "early_exit.ipynb",
        ("code", "import sys", []),
        ("code", "code = 1", ["parameters"]),
        ("code", "status = 'checking'\nif code:\n    sys.exit(code)", []),
        ("code", "{'status': status}", ["response"]),
    )
    magic = write_notebook(
        tmp_path / "magic.ipynb",
        ("code", "n = 2", ["parameters"]),
        ("code", "total = n * 2\n%no_such_line_magic_here --flag\ntotal += 1", []),
        ("code", "total", ["response"]),
    )
    expected = {
        exits: "early_exit.ipynb, cell 3 (id ",
        magic: "magic.ipynb, cell 2 (id ",
    }
    lines = {exits: "line 3: SystemExit: 1", magic: "line 2: UsageError: Line magic function"}

    for nb in (exits, magic):
        result = run_cli("inspect", nb)

        assert result.returncode in (1, 2), result.output
        assert "Traceback" not in result.output and "bug in promoter" not in result.output
        assert expected[nb] in result.stderr, result.stderr
        assert lines[nb] in result.stderr, result.stderr
