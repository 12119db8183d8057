"""The pre-commit hook, installed by pre-commit itself from this checkout into a throwaway repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.helpers import FIXTURES, ROOT, git


def test_hook_manifest() -> None:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "promoter-check"
    assert hook["entry"] == "promoter check"
    assert hook["language"] == "python"
    assert hook["files"] == r"\.ipynb$"


def _notebook() -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_code_cell("x = 2  # A number", id="params"),
        nbformat.v4.new_code_cell("{'double': x * 2}", id="response"),
    ]
    cells[0].metadata["tags"] = ["parameters"]
    cells[1].metadata["tags"] = ["response"]
    return nbformat.v4.new_notebook(cells=cells)


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="pre-commit installs hooks from git")
def test_hook_runs_in_a_throwaway_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    nbformat.write(_notebook(), repo / "good.ipynb")
    shutil.copy(FIXTURES / "bad" / "cell_raises.ipynb", repo / "broken.ipynb")
    shutil.copy(FIXTURES / "bad" / "empty_notebook.ipynb", repo / "plain.ipynb")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "notebooks")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        # The hook needs the CLI only: skip building the JupyterLab frontend (Node) when
        # pre-commit pip-installs this checkout into the hook's environment.
        "HATCH_BUILD_NO_HOOKS": "true",
        "NO_COLOR": "1",
    }
    pre_commit = [sys.executable, "-m", "pre_commit"]
    files = ["good.ipynb", "plain.ipynb", "broken.ipynb"]
    result = subprocess.run(
        [*pre_commit, "try-repo", str(ROOT), "promoter-check", "--verbose", "--files", *files],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "promoter check" in out and "Failed" in out
    assert "broken.ipynb, cell 3 (id handler), line 2: ValueError" in out
    assert "ok   good.ipynb" in out
    assert "skip plain.ipynb" in out
    assert "Traceback" not in out
