"""The pytest plugin: ``pytest --promoter PATH`` checks notebooks as test items.

pytest runs as a subprocess in an empty folder, the way a user's project runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci_repo import PROMOTABLE, make_repository
from tests.helpers import EXAMPLES, FIXTURES


def _pytest(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(cwd),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )


@pytest.mark.slow
def test_plugin_is_registered_and_light(tmp_path: Path) -> None:
    help_text = _pytest("--help", cwd=tmp_path).stdout
    assert "--promoter=PATH" in help_text and "--promoter-timeout" in help_text
    # Loaded in every pytest run: importing it must not import the kernel machinery.
    probe = "import sys, promoter.frontends.pytest_plugin; print('papermill' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_without_the_option_nothing_is_collected(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "bad" / "cell_raises.ipynb", tmp_path)
    (tmp_path / "test_unit.py").write_text("def test_one():\n    assert True\n")
    result = _pytest("-W", "error", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "warning" not in result.stdout.lower()


@pytest.mark.slow
def test_examples_pass_in_parallel(tmp_path: Path) -> None:
    # One token: pytest would otherwise read the folder as a test path when finding its config.
    result = _pytest(f"--promoter={EXAMPLES}", "-n", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.mark.slow
def test_broken_notebook_fails_with_a_readable_report(tmp_path: Path) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    shutil.copy(FIXTURES / "bad" / "cell_raises.ipynb", nbs)
    shutil.copy(FIXTURES / "bad" / "two_response_cells.ipynb", nbs)
    shutil.copy(FIXTURES / "bad" / "empty_notebook.ipynb", nbs)  # untagged: not collected
    result = _pytest("--promoter", "nbs", "--junit-xml", "junit.xml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "2 failed" in out and "empty_notebook" not in out
    assert "nbs/cell_raises.ipynb::promoter-check" in out
    assert "execute: nbs/cell_raises.ipynb, cell 4 (id handler), line 2: ValueError" in out
    assert "contract: nbs/two_response_cells.ipynb, cell 6 (id response-2)" in out
    assert "hint:" in out
    assert "Traceback" not in out and "_check.py" not in out


@pytest.mark.slow
def test_only_the_named_notebooks_are_collected(tmp_path: Path) -> None:
    """Like `pytest --nbmake notebooks/`: not the `testpaths` of the project's configuration."""
    repo = make_repository(tmp_path / "team", service=False)
    result = _pytest("--promoter", "notebooks/", "--collect-only", cwd=repo)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "promoter: 2 notebooks to check in notebooks/" in out
    assert out.count("<NotebookItem promoter-check>") == 2
    for notebook in PROMOTABLE:
        assert f"<NotebookFile {Path(notebook).name}>" in out
    assert "test_unit" not in out and "exploration" not in out and "papermill_report" not in out
    both = _pytest("tests", "--promoter", "notebooks/", "--collect-only", cwd=repo).stdout
    assert both.count("<NotebookItem promoter-check>") == 2
    assert "<Function test_unit_tests_are_not_collected>" in both


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_notebooks_only_in_a_team_repository(tmp_path: Path, workers: list[str]) -> None:
    repo = make_repository(tmp_path / "team")
    result = _pytest("--promoter", "notebooks/", *workers, cwd=repo)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "promoter: 2 notebooks to check in notebooks/" in out
    assert "2 passed" in out and "failed" not in out and "test_unit" not in out


def test_a_generated_service_under_the_path_is_left_to_its_own_tests(tmp_path: Path) -> None:
    """`pytest --promoter .` in a project: the notebooks, not the services' own tests."""
    from tests.helpers import write_notebook

    write_notebook(
        tmp_path / "price.ipynb",
        ("code", "area: float = 70.0", ["parameters"]),
        ("code", "{'estimate': area * 3000}", ["response"]),
    )
    service = tmp_path / "services" / "price"
    (service / "tests").mkdir(parents=True)
    (service / "promoter.lock.json").write_text('{"notebooks": [], "files": {}}\n')
    (service / "tests" / "test_service.py").write_text("def test_service():\n    pass\n")
    result = _pytest("--promoter", ".", "--collect-only", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "price.ipynb::promoter-check" in result.stdout
    assert "test_service" not in result.stdout
    # Named as an argument, the service's tests are collected as usual.
    named = _pytest("services/price", "--promoter", ".", "--collect-only", "-q", cwd=tmp_path)
    assert "test_service.py::test_service" in named.stdout
