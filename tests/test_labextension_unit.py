"""The frontend's own checks, run by pytest so ``make test`` covers them.

``labextension/`` carries jest unit tests of the dialog's rendering (``src/__tests__``), the
TypeScript compiler in strict mode and prettier. ``pip install -e .`` has already installed
their JavaScript dependencies with ``jlpm`` (the jupyter-builder hook builds the frontend); if
``node_modules`` is missing they are installed here from the committed lock file.

The role cases the frontend's position rule is tested on (``roles.cases.json``) are checked here
against the library itself, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

import promoter

# Kernels, Jupyter servers or the TypeScript toolchain: the full suite, not the edit loop.
pytestmark = pytest.mark.slow

LABEXTENSION = Path(__file__).resolve().parent.parent / "labextension"


def jlpm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``jlpm ARGS`` in labextension/, with this venv's tools first on PATH."""
    bin_dir = Path(sys.executable).parent
    executable = shutil.which("jlpm", path=str(bin_dir)) or shutil.which("jlpm")
    if executable is None:
        pytest.fail("jlpm not found: install jupyterlab (it is in the dev extra)")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [executable, *args],
        cwd=LABEXTENSION,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The frontend's JavaScript dependencies, installed from yarn.lock if absent."""
    modules = LABEXTENSION / "node_modules"
    if not (modules / ".bin" / "jest").exists():
        result = jlpm("install")
        assert result.returncode == 0, result.stdout + result.stderr
    return modules


def test_jest_unit_tests_pass(node_modules: Path) -> None:
    result = jlpm("test", "--ci")
    assert result.returncode == 0, result.stdout + result.stderr
    # jest reports on stderr; make sure the suites really ran.
    assert "Tests:" in result.stderr
    assert "failed" not in result.stderr.split("Tests:")[1].splitlines()[0]


def test_typescript_compiles_and_is_formatted(node_modules: Path) -> None:
    result = jlpm("lint:check")
    assert result.returncode == 0, result.stdout + result.stderr


ROLE_CASES = LABEXTENSION / "src" / "__tests__" / "roles.cases.json"


def case_notebook(cells: list[tuple[str, list[str]]]) -> object:
    """A valid notebook with the given cell kinds and tags (code that inspects cleanly)."""
    new = {
        "markdown": lambda tags: nbformat.v4.new_markdown_cell("# Title"),
        "raw": lambda tags: nbformat.v4.new_raw_cell("raw"),
        "code": lambda tags: nbformat.v4.new_code_cell(
            "n = 1" if "parameters" in tags else "{'n': n}" if "response" in tags else "x = 1",
            metadata={"tags": tags},
        ),
    }
    return nbformat.v4.new_notebook(cells=[new[kind](tags) for kind, tags in cells])


@pytest.mark.parametrize(
    "case",
    json.loads(ROLE_CASES.read_text())["cases"],
    ids=lambda case: case["name"],
)
def test_role_cases_match_the_library(case: dict[str, Any], tmp_path: Path) -> None:
    """The cases roles.spec.ts checks the frontend's rule against are the library's answers."""
    path = tmp_path / "case.ipynb"
    nbformat.write(case_notebook(case["cells"]), path)
    cells = promoter.inspect(path, execute=False).to_dict()["cells"]
    assert [c["role"] for c in cells] == case["roles"]
