"""What is not promoted does not run: `skip` cells and cells after `response` (DESIGN.md 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, run_cli

SKIP = FIXTURES / "skip" / "skip_cells.ipynb"


@pytest.mark.slow
def test_skip_cells_do_not_affect_inspect() -> None:
    result = run_cli("inspect", SKIP, "--json")

    assert result.returncode == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["sample_response"] == {"y": 3.0}
    roles = [c["role"] for c in shown["cells"]]
    assert roles.count("skip") == 5
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_skip_cells_do_not_affect_convert_or_check(tmp_path: Path) -> None:
    out = tmp_path / "service"
    converted = run_cli("convert", SKIP, "-o", out)
    assert converted.returncode == 0, converted.output
    assert "no_such_module" not in (out / "app" / "pipeline.py").read_text()

    checked = run_cli("check", SKIP, "--json")

    assert checked.returncode == 0, checked.output
    outcomes = json.loads(checked.stdout)["notebooks"][0]["checks"]
    statuses = {o["check"]: o["status"] for o in outcomes}
    assert [statuses[c] for c in ("contract", "execute", "fidelity")] == ["passed"] * 3


@pytest.mark.slow
def test_check_all_cells_runs_the_skipped_cells_too(tmp_path: Path) -> None:
    notebook = tmp_path / "nb.ipynb"
    # The fixture's first skip cell is a `!pip install` (network): use a notebook without it.
    source = json.loads(SKIP.read_text())
    source["cells"] = [c for c in source["cells"] if "pip install" not in "".join(c["source"])]
    notebook.write_text(json.dumps(source))

    default = run_cli("check", notebook, "--json")
    everything = run_cli("check", notebook, "--all-cells", "--json")

    assert default.returncode == 0, default.output
    assert everything.returncode == 1, everything.output
    failed = json.loads(everything.stdout)["notebooks"][0]["checks"]
    execute = next(o for o in failed if o["check"] == "execute")
    assert execute["status"] == "failed"
    assert "no_such_module_promoter_xyz" in execute["message"]
