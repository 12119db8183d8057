"""The pre-commit hook, installed by pre-commit itself from this checkout into a throwaway repo."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.ci_repo import PROMOTABLE, environment, make_repository
from tests.helpers import FIXTURES, ROOT, git


def test_hook_manifest() -> None:
    # `language: system` (the repository's own environment, where the notebooks' libraries
    # are), not `python` (pre-commit's isolated virtualenv): DESIGN.md section 6.
    static, full = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert static["id"] == "promoter-static"
    assert static["entry"] == "promoter check --static --changed"
    assert "stages" not in static  # every commit
    assert (full["id"], full["entry"]) == ("promoter-check", "promoter check --changed")
    assert full["stages"] == ["pre-push", "manual"]
    for hook in (static, full):
        assert hook["language"] == "system"
        # Every changed file: a data-only commit must reach the hook (DESIGN.md section 6).
        assert "files" not in hook
        assert hook["args"] == ["--skip-untagged"]


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
    env = environment(tmp_path / "pre-commit-home")
    pre_commit = [sys.executable, "-m", "pre_commit"]
    files = ["good.ipynb", "plain.ipynb", "broken.ipynb"]
    try_repo = [*pre_commit, "try-repo", str(ROOT), "promoter-check", "--verbose"]
    result = subprocess.run(
        [*try_repo, "--hook-stage", "manual", "--files", *files],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "promoter check" in out and "Failed" in out
    assert "broken.ipynb, cell 4 (id handler), line 2: ValueError" in out
    assert "ok   good.ipynb" in out
    assert "skip plain.ipynb" in out
    assert "Traceback" not in out


def _readme_config() -> str:
    """The `.pre-commit-config.yaml` of the README's pre-commit section, verbatim."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**pre-commit**") :]
    match = re.search(r"```yaml\n(repos:\n.*?)```", section, re.DOTALL)
    assert match is not None, "the README's pre-commit section has no configuration"
    return match.group(1)


def _hooks_repository(tmp_path: Path, rev: str) -> Path:
    """What pre-commit clones for `repo:`: promoter's hook manifest at the tag `rev`.

    Hooks of `language: system` need nothing else from the repository.
    """
    hooks = tmp_path / "promoter-hooks"
    hooks.mkdir()
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", hooks)
    git(hooks, "init", "-q")
    git(hooks, "add", ".")
    git(hooks, "commit", "-q", "-m", "hooks")
    git(hooks, "tag", rev)
    return hooks


def _pre_commit(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_readme_configuration_in_a_team_repository(tmp_path: Path) -> None:
    config = _readme_config()
    [rev] = re.findall(r"rev: (\S+)", config)
    hooks = _hooks_repository(tmp_path, rev)
    repo = make_repository(tmp_path / "team")
    placeholder = "https://github.com/OWNER/promoter"
    assert placeholder in config
    (repo / ".pre-commit-config.yaml").write_text(config.replace(placeholder, str(hooks)))
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-q", "-m", "pre-commit")
    env = environment(tmp_path / "pre-commit-home")

    clean = _pre_commit(repo, env, "--all-files", "--verbose")
    out = clean.stdout + clean.stderr
    assert clean.returncode == 0, out
    assert re.search(r"promoter check --static\.+Passed", out), out
    assert "ok   notebooks/forecast.ipynb" in out and "ok   notebooks/summary.ipynb" in out
    # Papermill's `parameters` tag alone does not make a promoter notebook.
    assert "skip notebooks/papermill_report.ipynb" in out
    assert "skip notebooks/exploration.ipynb" in out

    # The full check (on push, and in CI) runs the notebooks in this environment: numpy and
    # pandas import, the service answers what the notebook answers.
    full = _pre_commit(repo, env, "promoter-check", "--hook-stage", "manual", "-a", "-v")
    out = full.stdout + full.stderr
    assert full.returncode == 0, out
    assert "ModuleNotFoundError" not in out
    for notebook in PROMOTABLE:
        assert f"ok   {notebook}" in out

    # A notebook edit makes the committed service stale: the commit is refused, with the fix.
    forecast = repo / "notebooks" / "forecast.ipynb"
    nb = nbformat.read(forecast, as_version=4)
    nb.cells[3].source = nb.cells[3].source.replace("i * 0.5", "i * 0.25")
    nbformat.write(nb, forecast)
    git(repo, "add", "notebooks/forecast.ipynb")
    stale = _pre_commit(repo, env)
    out = stale.stdout + stale.stderr
    assert stale.returncode == 1, out
    assert "services/forecast is stale" in out
    assert "promoter convert notebooks/forecast.ipynb -o services/forecast" in out
    git(repo, "checkout", "HEAD", "--", "notebooks/forecast.ipynb")

    # A broken tag: the 3rd cell tagged `parameters` too.
    summary = repo / "notebooks" / "summary.ipynb"
    nb = nbformat.read(summary, as_version=4)
    nb.cells[2].metadata["tags"] = ["parameters"]
    nbformat.write(nb, summary)
    git(repo, "add", "notebooks/summary.ipynb")
    broken = _pre_commit(repo, env)
    out = broken.stdout + broken.stderr
    assert broken.returncode == 1, out
    assert f"notebooks/summary.ipynb, cell 3 (id {nb.cells[2].id})" in out
    assert "more than one cell is tagged `parameters` (cells 2, 3)" in out
    assert "Traceback" not in out
