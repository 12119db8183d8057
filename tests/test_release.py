"""What a newcomer meets first: one version everywhere, an install that works, the README's
commands as written, the demo's printed request, a test run that leaves tracked files alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, free_port, run_cli

README = (ROOT / "README.md").read_text()


def _pyproject_version() -> str:
    """The version, from its one place: pyproject.toml (the lab extension's must agree)."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_one_version_everywhere() -> None:
    import promoter

    version = _pyproject_version()
    assert promoter.__version__ == version
    assert run_cli("--version").stdout.strip() == f"promoter {version}"
    assert f"This is promoter {version}" in README
    changelog = (ROOT / "CHANGELOG.md").read_text()
    released = [v for v in re.findall(r"^## (\S+)", changelog, re.MULTILINE) if v != "Unreleased"]
    assert released[0] == version
    # The JupyterLab extension's package.json (built into the wheel) says the same version.
    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert package["version"] == version
    # The lab extension JupyterLab loads (issue 26: it said 0.1.0 beside the package's 0.2.0).
    installed = Path(sys.prefix, "share", "jupyter", "labextensions", "promoter-jupyterlab")
    assert json.loads((installed / "package.json").read_text())["version"] == version


def _documents() -> dict[str, str]:
    """Everything a user reads about installing: README, user guide, hooks, workflow, CHANGELOG."""
    paths = [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / ".pre-commit-hooks.yaml",
        ROOT / "examples" / "ci" / "github-workflow.yml",
        *sorted((ROOT / "docs").glob("*.md")),
    ]
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in paths}


def test_no_reference_to_a_release_that_does_not_exist() -> None:
    # There are no release tags (`git tag` is empty): no install pin, `rev:` or workflow may
    # name one. Installs pin a commit (COMMIT, a placeholder) or use the wheel of `make dist`.
    tags = subprocess.run(["git", "tag"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for name, text in _documents().items():
        for tag in re.findall(r"(?:@|rev: )(v\d+\.\d+\.\d+)", text):
            assert tag in tags, f"{name} names the release {tag}, which has no tag"
    assert "rev: COMMIT" in README
    assert "make dist" in README


def test_the_workflow_installs_a_pinned_promoter() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "github-workflow.yml").read_text())
    steps = workflow["jobs"]["promoter-check"]["steps"]
    [install] = [s for s in steps if s.get("name") == "Install"]
    pins = re.findall(
        r"\"promoter @ git\+https://github\.com/OWNER/promoter@(\w+)\"", install["run"]
    )
    assert pins == ["COMMIT"]
    assert "HATCH_BUILD_NO_HOOKS" not in str(install)
    # Building from a commit builds the JupyterLab extension: Node.js 20 first.
    [node] = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-node")]
    assert node["with"]["node-version"] == "20"
    assert steps.index(node) < steps.index(install)
    assert not re.search(r"pip install promoter\s*$", install["run"], re.MULTILINE)
    [check] = [s for s in steps if s.get("name") == "promoter check"]
    assert "--format github" in check["run"] and "--junit-xml" in check["run"]
    text = (ROOT / "examples" / "ci" / "github-workflow.yml").read_text()
    assert "OWNER and COMMIT are placeholders" in text


def test_running_the_tests_leaves_the_readme_screenshots_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests import test_labextension_e2e as e2e

    class Page:  # what e2e.screenshot needs of a Playwright page: it writes a PNG
        def screenshot(self, path: str) -> None:
            Path(path).write_bytes(b"png")

    monkeypatch.delenv("PROMOTER_UPDATE_SCREENSHOTS", raising=False)
    before = {p: p.stat().st_mtime_ns for p in e2e.DOCS_IMAGES.glob("*.png")}
    shot = e2e.screenshot(Page(), tmp_path, "promote-dialog.png")  # type: ignore[arg-type]
    assert shot.is_relative_to(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in e2e.DOCS_IMAGES.glob("*.png")} == before


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}/ready"


def _quick_start_commands() -> list[str]:
    section = README[README.index("## Quick start") : README.index("## The CLI")]
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section, re.DOTALL)
    [block] = [b for b in blocks if "promoter convert" in b]
    return [line.split("  #")[0].strip() for line in block.strip().splitlines()]


@pytest.mark.slow
def test_quick_start_works_copy_pasted(tmp_path: Path) -> None:
    """Step 2 of the Quick start, pasted into a shell in a checkout after `make install`."""
    commands = _quick_start_commands()
    assert commands[0] == "source .venv/bin/activate"
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the checkout's virtual environment
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    port = free_port()
    script = []
    for command in commands:
        if "uvicorn app.main:app" in command:
            # It serves until stopped: here in the background (its id kept to stop it), asked
            # once whether it is ready, as one would from a second terminal.
            folder, serve = command.split(" && ")
            script.append(folder)
            script.append(f"{serve} --port {port} > server.log 2>&1 &")
            script.append("trap 'kill $!' EXIT")  # $! is uvicorn itself
            script.append(f"for _ in $(seq 120); do curl -sf {_url(port)} && break; sleep 1; done")
            script.append(f"curl -sf {_url(port)}")
        else:
            script.append(command)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # a fresh shell: no venv on PATH yet
    result = subprocess.run(
        ["bash", "-e", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "POST /iris_classifier" in result.stdout and "passed" in result.stdout


@pytest.mark.slow
def test_the_demo_prints_a_curl_that_works(tmp_path: Path) -> None:
    port = free_port()
    notebook = "examples/notebooks/text_statistics.ipynb"
    out = str(tmp_path / "service")
    demo = subprocess.run(
        [
            sys.executable,
            "scripts/demo.py",
            "--notebook",
            notebook,
            "--out",
            out,
            "--port",
            str(port),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    [curl] = [line[2:] for line in demo.stdout.splitlines() if line.startswith("$ curl")]
    assert "-H 'Content-Type: application/json'" in curl
    # Paste it while the service runs: it answers 200 with the demo's answer.
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        cwd=tmp_path / "service",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from tests.helpers import wait_ready

        wait_ready(f"http://127.0.0.1:{port}", server)
        pasted = subprocess.run(
            ["bash", "-c", curl + " -s -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    body, status = pasted.stdout.rsplit("\n", 1)
    assert status == "200", pasted.stdout
    printed = demo.stdout.split(curl, 1)[1]
    assert json.loads(body) == json.loads(printed)
