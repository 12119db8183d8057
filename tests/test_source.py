"""``_source``: cell source read as Python, the response expression found once."""

from pathlib import Path

import pytest

from promoter import ContractError
from promoter.reading.notebook import read_notebook
from promoter.reading.source import python_source, response_expression, source_lines
from tests.helpers import write_notebook


def test_source_lines_split_only_at_newlines() -> None:
    assert source_lines("a = '\x0c'\nb = 1\n") == ["a = '\x0c'", "b = 1"]
    assert source_lines("x\n", keepends=True) == ["x\n"]


def test_magics_become_calls_and_plain_code_is_untouched() -> None:
    assert "get_ipython()" in python_source("%matplotlib inline\nx = 1")
    assert python_source("x = 1") == "x = 1"


def _response(tmp_path: Path, source: str):
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", source, ["response"]),
    )
    return response_expression(read_notebook(nb))


def test_the_last_expression_and_its_annotation(tmp_path: Path) -> None:
    found = _response(tmp_path, "result: dict[str, int] = {'x': x}\nresult")
    assert found.annotation == "dict[str, int]"
    assert found.cell.tags == ("response",)
    assert found.last.lineno == 2


def test_an_annotated_assignment_declares_the_type(tmp_path: Path) -> None:
    assert _response(tmp_path, "answer: int = x + 1").annotation == "int"


def test_a_response_cell_ending_in_a_statement_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="must end with an expression") as caught:
        _response(tmp_path, "y = 1\nfor i in range(3):\n    y += i")
    assert caught.value.location.line == 2
