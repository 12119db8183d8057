"""A request integer that sizes an allocation or a loop, with no upper bound, is a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

import promoter
from tests.helpers import run_cli, write_notebook


def _warnings(tmp_path: Path, parameters: str, *code: str) -> list[promoter.Finding]:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import numpy as np", []),
        ("code", parameters, ["parameters"]),
        *(("code", source, []) for source in code),
        ("code", "{'done': True}", ["response"]),
    )
    found = promoter.inspect(notebook, execute=False).warnings
    return [w for w in found if "no upper bound" in w.message]


@pytest.mark.parametrize(
    "use",
    [
        "x = np.ones(n)",
        "x = np.zeros((n, 3))",
        "x = [0] * n",
        "x = 'x' * n",
        "x = n * [1.0]",
        "x = sum(i for i in range(n))",
        "x = np.random.default_rng(0).normal(size=n)",
        "size = n * 2\nx = bytearray(size)",
        "for i in range(n):\n    pass",
    ],
)
def test_an_unbounded_integer_that_sizes_an_allocation_is_named(tmp_path: Path, use: str) -> None:
    found = _warnings(tmp_path, "n: int = 10  # how many", "k = 1", use)

    assert len(found) == 1
    warning = found[0]
    assert warning.message.startswith("request field 'n' sizes `")
    assert "Annotated[int, Field(ge=0, le=10_000)] = 10" in warning.message
    assert warning.location is not None
    assert warning.location.cell_number == 4
    assert warning.location.line == use.count("\n") + 1 - (use.startswith("for") and 1)


@pytest.mark.parametrize(
    "parameters",
    [
        "n: Annotated[int, Field(ge=0, le=1000)] = 10",
        "n: Annotated[int, Field(lt=1000)] = 10",
        "n: conint(ge=1, le=64) = 10",
        "n: Literal[1, 2, 3] = 1",
        "n: float = 1.0",
        "n: str = 'x'",
    ],
)
def test_a_bounded_or_non_integer_field_is_fine(tmp_path: Path, parameters: str) -> None:
    imports = "from typing import Annotated, Literal\nfrom pydantic import Field, conint\n"
    assert _warnings(tmp_path, imports + parameters, "x = np.ones(int(n) if n else 1)") == []


def test_a_literal_default_without_annotation_counts_and_min_bounds_it(tmp_path: Path) -> None:
    assert len(_warnings(tmp_path, "n = 10", "x = np.arange(n)")) == 1
    assert _warnings(tmp_path, "n = 10", "x = np.arange(min(n, 10_000))") == []
    assert _warnings(tmp_path, "n = 10", "x = np.ones(3) * n") == []


def test_inspect_and_convert_print_the_warning_with_cell_and_line(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "simulate.ipynb",
        ("markdown", "# Simulate\n\nA Monte Carlo estimate.", []),
        ("code", "import numpy as np", []),
        ("code", "samples = 1000  # draws", ["parameters"]),
        ("code", "rng = np.random.default_rng(0)\ndraws = rng.uniform(size=samples)", []),
        ("code", "{'mean': float(draws.mean())}", ["response"]),
    )

    result = run_cli("inspect", "--static", notebook)

    assert result.returncode == 0, result.output
    text = " ".join(result.output.split())
    assert "request field 'samples' sizes" in text
    assert "cell 4" in text and "line 2" in text
    assert "Field(ge=0, le=10_000)" in text
