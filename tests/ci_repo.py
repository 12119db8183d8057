"""A team's repository, as the CI integrations meet it: notebooks importing numpy and pandas.

Used by the pre-commit and pytest plugin tests: ``notebooks/`` holds two promotable notebooks,
an exploration notebook without tags and a papermill report (only the ``parameters`` tag);
``services/forecast`` is the committed service of one of them; ``tests/`` holds a unit test
that fails, so a run that collects it shows; ``pyproject.toml`` sets ``testpaths = ["tests"]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.helpers import git, run_cli, write_notebook

#: The notebooks that promoter checks (the other two are not promoter notebooks).
PROMOTABLE = ("notebooks/forecast.ipynb", "notebooks/summary.ipynb")


def environment(home: Path) -> dict[str, str]:
    """The repository's own environment: this virtualenv's ``bin`` (promoter, numpy, pandas)
    first on PATH, as after ``source .venv/bin/activate``; pre-commit's cache under ``home``."""
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PRE_COMMIT_HOME": str(home),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }


def make_repository(root: Path, service: bool = True) -> Path:
    """Write and commit the repository under ``root``; returns ``root``.

    ``service=False`` leaves out the generated service (no kernel runs: a fast fixture).
    """
    root.mkdir(parents=True, exist_ok=True)
    write_notebook(
        root / "notebooks" / "forecast.ipynb",
        ("markdown", "# Demand forecast\n\nA rolling mean, extended.", []),
        ("code", "import numpy as np\nimport pandas as pd", ["setup"]),
        ("code", "days: int = 3  # Days to forecast", ["parameters"]),
        (
            "code",
            "history = pd.Series(np.arange(1.0, 15.0))\n"
            "mean = float(history.rolling(7).mean().iloc[-1])\n"
            "forecast = [round(mean + i * 0.5, 3) for i in range(days)]",
            [],
        ),
        ("code", "{'days': days, 'forecast': forecast}", ["response"]),
    )
    write_notebook(
        root / "notebooks" / "summary.ipynb",
        ("code", "import pandas as pd", ["setup"]),
        ("code", "values: list[float] = [1.0, 2.5, 4.0]", ["parameters"]),
        (
            "code",
            "frame = pd.DataFrame({'value': values})\nstats = frame['value'].agg(['mean', 'max'])",
            [],
        ),
        ("code", "{'mean': float(stats['mean']), 'max': float(stats['max'])}", ["response"]),
    )
    write_notebook(
        root / "notebooks" / "exploration.ipynb",
        ("code", "import numpy as np\nnp.random.default_rng(0).normal(size=3)", []),
    )
    write_notebook(
        root / "notebooks" / "papermill_report.ipynb",
        ("code", "day = '2026-01-01'", ["parameters"]),
        ("code", "print(day)", []),
    )
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "test_unit.py").write_text(
        "def test_unit_tests_are_not_collected():\n    assert False, 'a unit test ran'\n"
    )
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    if service:
        converted = run_cli(
            "convert", "notebooks/forecast.ipynb", "-o", "services/forecast", cwd=root
        )
        assert converted.returncode == 0, converted.output
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "notebooks and the forecast service")
    return root
