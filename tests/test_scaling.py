"""Convert time grows linearly with the number of cells (issue 13: papermill rewrote the whole
output notebook after every cell, so 1,000 cells took 124 s)."""

import time
from pathlib import Path

import pytest

import promoter
from tests.helpers import write_notebook


def _notebook(folder: Path, cells: int) -> Path:
    body = [("code", f"y{i} = x + {i}", []) for i in range(cells)]
    return write_notebook(
        folder / f"cells_{cells}.ipynb",
        ("code", "x = 1", ["parameters"]),
        *body,
        ("code", "{'y': x}", ["response"]),
    )


def _seconds(path: Path) -> float:
    begin = time.perf_counter()
    promoter.inspect(path)
    return time.perf_counter() - begin


@pytest.mark.slow
def test_four_times_the_cells_takes_about_four_times_as_long(tmp_path: Path) -> None:
    _seconds(_notebook(tmp_path, 10))  # warm: imports and the first kernel start
    small = min(_seconds(_notebook(tmp_path, 150)) for _ in range(2))
    large = min(_seconds(_notebook(tmp_path, 600)) for _ in range(2))
    ratio = large / small
    print(f"150 cells {small:.2f} s, 600 cells {large:.2f} s: ratio {ratio:.2f} (linear: <= 4)")
    # A ratio, measured in the same run: quadratic growth would be 16 (a kernel start is a
    # fixed cost, so linear growth stays under 4).
    assert ratio < 8
