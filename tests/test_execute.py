"""``_execute``: papermill runs the notebook in a real kernel; the answer and errors come back."""

from pathlib import Path

import pytest

from promoter import ExecutionError
from promoter.reading.notebook import read_notebook
from promoter.reading.source import response_expression
from promoter.running.execute import execute
from tests.helpers import write_notebook

pytestmark = pytest.mark.slow


def _notebook(tmp_path: Path, handler: str):
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import math", []),
        ("code", "n = 3  # how many", ["parameters"]),
        ("code", handler, []),
        ("code", "{'n': n, 'root': math.sqrt(n)}", ["response"]),
    )
    return read_notebook(path)


def test_the_answer_parameters_and_progress_come_back(tmp_path: Path) -> None:
    notebook = _notebook(tmp_path, "n = n * 2")
    seen: list[tuple[str, int, int]] = []
    run = execute(
        notebook,
        response_expression(notebook),
        ["n"],
        {"n": 8},
        on_progress=lambda *event: seen.append(event),
    )
    assert run.response == {"n": 16, "root": 4.0}
    assert run.parameters == {"n": 8}
    assert run.kind == "builtins.dict"
    assert {name for name, _, _ in seen} == {str(notebook.path)}
    assert seen[-1][1] == seen[-1][2] and seen[0][1] < seen[-1][1]


def test_a_failing_cell_is_named_with_its_line(tmp_path: Path) -> None:
    notebook = _notebook(tmp_path, "x = 1\ny = x / 0")
    with pytest.raises(ExecutionError, match="ZeroDivisionError") as caught:
        execute(notebook, response_expression(notebook), ["n"])
    location = caught.value.location
    assert (location.cell_index, location.line) == (2, 2)
    assert caught.value.executed is not None
