"""The user guide (docs/, MkDocs) builds with --strict, catches broken links, and quotes
promoter's real messages; each command's --help ends with an example."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promoter.frontends.cli import app
from tests.helpers import ROOT

DOCS = ROOT / "docs"


def _mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_user_guide_builds_strict(tmp_path: Path) -> None:
    built = _mkdocs_build(ROOT, tmp_path / "site")
    assert built.returncode == 0, built.stderr
    for page in ("install", "tags", "answers", "settings", "cli", "ci", "troubleshooting"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with (tmp_path / "docs" / "ci.md").open("a") as page:
        page.write("\nSee [the missing page](no-such-page.md).\n")
    built = _mkdocs_build(tmp_path, tmp_path / "site")
    assert built.returncode != 0
    assert "no-such-page.md" in built.stderr


def _sources() -> str:
    files = [*sorted((ROOT / "promoter").rglob("*.py")), ROOT / "hatch_build.py"]
    files += sorted((ROOT / "scripts").glob("*.py"))
    return "\n".join(p.read_text(encoding="utf-8") for p in files)


def test_troubleshooting_quotes_real_messages() -> None:
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### (.+)$", page, re.MULTILINE)
    assert len(headings) >= 15
    sources = _sources()
    missing = [h for h in headings if h not in sources]
    assert missing == [], "troubleshooting headings promoter never prints"


def test_the_guide_documents_every_notebook_setting() -> None:
    from promoter.reading import settings

    page = (DOCS / "settings.md").read_text(encoding="utf-8")
    keys = re.findall(r'^    "(\w+)",$', Path(settings.__file__).read_text(), re.MULTILINE)
    assert keys, "the settings module lists its keys"
    assert [k for k in keys if f"`{k}`" not in page] == []


@pytest.mark.parametrize("command", ["inspect", "convert", "serve", "check"])
def test_help_shows_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert re.search(rf"Examples?: .*promoter {command} ", result.output), result.output
