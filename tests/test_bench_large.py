"""``python -m bench --large --smoke``: the large-answer scaling runs end to end.

Timings from a smoke run mean nothing, so none is asserted: only that both ways answered at
every size, in process and over HTTP, and that ``dumps`` gave the converter's data.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_large_answer_smoke_run_reports_ratios(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--large", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "large.json").read_text())
    assert data["rows"] == [10, 1000]
    assert data["dumps_equals_to_jsonable"] == {"10": True, "1000": True}
    for where in ("in_process", "http"):
        for rows in ("10", "1000"):
            ratios = data[where][rows]["dumps_vs_handwritten"]
            assert ratios["median"] > 0 and ratios["best"] > 0
    assert "| 1,000 | http |" in result.stdout
