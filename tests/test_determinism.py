"""One rule for non-determinism: convert and check both warn (naming the unseeded cells) and
pass on a notebook whose answer changes from run to run, and both fail with ``--strict``.

The end-to-end test runs the real console script on a real notebook: papermill runs it, the
generated service runs it again in a fresh process, and the answers differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promoter.analysis.determinism import unseeded_randomness
from promoter.reading.notebook import read_notebook
from tests.helpers import run_cli, write_notebook


def _found(tmp_path: Path, *sources: str) -> list[tuple[str, int | None, int | None]]:
    cells = [("code", "n = 1  # A number", ["parameters"])]
    cells += [("code", source, []) for source in sources]
    cells[-1] = ("code", cells[-1][1], ["response"])
    path = write_notebook(tmp_path / "nb.ipynb", *cells)
    found = unseeded_randomness(read_notebook(path))
    return [(what, loc.cell_index, loc.line) for what, loc in found]


def test_unseeded_numpy_and_random_draws_are_found(tmp_path: Path) -> None:
    found = _found(
        tmp_path,
        "import numpy as np\nimport random\nfrom random import choice",
        "a = np.random.rand(3)\nb = random.random()\nc = choice([1, 2])\n"
        "d = np.random.default_rng()",
        "{'a': list(a), 'b': b, 'c': c}",
    )
    assert found == [
        ("`np.random.rand` without a seed before it", 2, 1),
        ("`random.random` without a seed before it", 2, 2),
        ("`choice` without a seed before it", 2, 3),
        ("`np.random.default_rng` without a seed", 2, 4),
    ]


def test_seeds_before_the_draws_silence_them(tmp_path: Path) -> None:
    found = _found(
        tmp_path,
        "import numpy as np\nimport random\nnp.random.seed(0)\nrandom.seed(1)",
        "a = np.random.rand(3)\nb = random.random()\nrng = np.random.default_rng(42)",
        "{'a': list(a), 'b': b, 'c': float(rng.random())}",
    )
    assert found == []
    later = _found(tmp_path, "import random\nb = random.random()\nrandom.seed(1)", "b")
    assert later == [("`random.random` without a seed before it", 1, 2)]


def test_scikit_learn_without_random_state(tmp_path: Path) -> None:
    found = _found(
        tmp_path,
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.linear_model import LinearRegression",
        "parts = train_test_split([1, 2, 3, 4])\n"
        "forest = RandomForestClassifier(n_estimators=3)\n"
        "seeded = RandomForestClassifier(random_state=0)\n"
        "linear = LinearRegression()",
        "n",
    )
    assert found == [
        ("`train_test_split` without random_state", 2, 1),
        ("`RandomForestClassifier` without random_state", 2, 2),
    ]


# --- end to end: the real CLI ------------------------------------------------------------------


@pytest.fixture
def random_notebook(tmp_path: Path) -> Path:
    return write_notebook(
        tmp_path / "dice.ipynb",
        ("markdown", "# Dice\n\nRolls unseeded dice.", []),
        ("code", "import random", ["setup"]),
        ("code", "n = 3  # How many dice", ["parameters"]),
        ("code", "rolls = [random.random() for _ in range(n)]", []),
        ("code", "{'rolls': rolls, 'total': sum(rolls)}", ["response"]),
    )


def _warnings(messages: list[str]) -> None:
    # the draw is in the fourth cell (counted from 1, as JupyterLab does)
    assert any("changes from run to run" in m and "draw(s) in cell 4;" in m for m in messages), (
        messages
    )
    assert any("`random.random` without a seed before it" in m for m in messages), messages


@pytest.mark.slow
def test_convert_and_check_agree_on_unseeded_randomness(random_notebook: Path) -> None:
    folder = random_notebook.parent
    converted = run_cli("convert", random_notebook, "-o", folder / "service", "--json")
    assert converted.returncode == 0, converted.output
    conversion = json.loads(converted.stdout)
    _warnings([str(w["message"]) for w in conversion["warnings"]])
    assert conversion["fidelity"]["dice"] is not None  # the values differ; the shape matched

    checked = run_cli("check", random_notebook, "--json")
    assert checked.returncode == 0, checked.output
    [result] = json.loads(checked.stdout)["notebooks"]
    assert {c["check"]: c["status"] for c in result["checks"]}["fidelity"] == "passed"
    _warnings(result["warnings"])
    text = run_cli("check", random_notebook)
    assert text.returncode == 0 and "changes from run to run" in text.stdout, text.output

    strict = run_cli("convert", random_notebook, "-o", folder / "strict", "--strict")
    assert strict.returncode == 1, strict.output
    assert "changes from run to run" in strict.output and "Traceback" not in strict.output
    assert not (folder / "strict").exists()

    strict_check = run_cli("check", random_notebook, "--strict", "--json")
    assert strict_check.returncode == 1, strict_check.output
    [failed] = json.loads(strict_check.stdout)["notebooks"]
    [fidelity] = [c for c in failed["checks"] if c["check"] == "fidelity"]
    assert fidelity["status"] == "failed" and "changes from run to run" in fidelity["message"]
    assert fidelity["cell_index"] == 3 and fidelity["line"] == 1
