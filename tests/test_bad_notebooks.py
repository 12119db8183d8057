"""Every broken notebook gives one clear message (notebook, cell, line) and never a traceback."""

import json
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, run_cli

BAD = sorted((FIXTURES / "bad").glob("*.ipynb"))
# Problems only a real run can find (papermill executes the notebook).
RUNTIME = {"cell_raises", "response_is_generator", "response_not_serialisable"}


def test_there_are_enough_bad_notebooks() -> None:
    assert len(BAD) >= 15


@pytest.mark.parametrize(
    "notebook", [p for p in BAD if p.stem not in RUNTIME], ids=lambda p: p.stem
)
@pytest.mark.slow
def test_static_problems(notebook: Path) -> None:
    result = run_cli("inspect", "--static", notebook)
    assert result.returncode in (1, 2), result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error:")
    assert str(notebook) in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(RUNTIME))
def test_runtime_problems_leave_no_output(stem: str, tmp_path: Path) -> None:
    notebook = FIXTURES / "bad" / f"{stem}.ipynb"
    result = run_cli("convert", notebook, "-o", tmp_path / "service")
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    # Cells as people count them (1-based): the handler is the 4th cell, the response the 5th.
    assert f"{notebook}, cell 4" in result.stderr or f"{notebook}, cell 5" in result.stderr
    assert "line" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_errors_as_json_carry_the_location(tmp_path: Path) -> None:
    from promoter import PromoterError, inspect

    with pytest.raises(PromoterError) as info:
        inspect(FIXTURES / "bad" / "syntax_error_in_handler.ipynb", execute=False)
    data = info.value.to_dict()
    assert (data["cell_index"], data["cell_id"], data["line"]) == (3, "handler", 2)
    json.dumps(data)
