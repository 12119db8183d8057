"""The check-vs-nbmake benchmark runs (smoke mode: one notebook, one round)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_smoke(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "check_vs_nbmake.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["notebooks"] == ["loan_calculator.ipynb"] and data["jobs"] == 1
    assert data["ratio"] > 0 and len(data["promoter_check_seconds"]) == 1
    assert "ratio" in proc.stderr
