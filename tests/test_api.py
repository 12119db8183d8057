"""``_api``: inspect and convert, the library surface the CLI and JupyterLab call."""

from pathlib import Path

import pytest

import promoter
from tests.helpers import EXAMPLES, write_notebook


def test_static_inspection_runs_nothing(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import sys\nsys.exit(3)", ["skip"]),
        ("code", "x: int = 2", ["parameters"]),
        ("code", "{'y': x * 2}", ["response"]),
    )
    static = promoter.inspect(path, execute=False)
    assert static.execution is None and static.response is None
    assert [p.name for p in static.request.parameters] == ["x"]
    assert static.expression.cell.index == 2
    with pytest.raises(promoter.UsageError):
        static.plan()


@pytest.mark.slow
def test_execute_completes_a_static_inspection(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x: int = 2", ["parameters"]),
        ("code", "{'y': x * 2}", ["response"]),
    )
    static = promoter.inspect(path, execute=False)
    full = static.execute()
    assert full.response is not None and full.response.sample == {"y": 4}
    assert full.notebook is static.notebook
    assert full.to_dict()["sample_response"] == {"y": 4}
    assert full.plan().response is full.response


@pytest.mark.slow
def test_convert_reports_fidelity_per_notebook(tmp_path: Path) -> None:
    conversion = promoter.convert([EXAMPLES / "shipping_quote.ipynb"], tmp_path / "svc")
    assert conversion.reproduces
    fidelity = conversion.fidelity["shipping_quote"]
    assert isinstance(fidelity, promoter.Fidelity) and fidelity.matches
    assert conversion.to_dict()["fidelity"] == {"shipping_quote": None}
    assert "tests/test_service.py" in conversion.files
    assert "promoter.lock.json" in conversion.files
