"""The "Promote" button end to end: real JupyterLab, real Chromium, real files on disk.

Starts ``jupyter lab`` on 127.0.0.1 with a token over a temporary root holding the iris example,
opens the notebook in headless Chromium through Playwright, clicks the toolbar button, checks the
dialog lists the notebook's parameters (and saves a screenshot of it for the README), clicks
Generate, then runs the generated service's own tests.

It exercises the installed package: the prebuilt frontend in ``share/jupyter/labextensions`` and
the config file enabling the server extension (``make install`` puts both in the venv).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)",
    ),
]

REPO = Path(__file__).resolve().parent.parent
IRIS = REPO / "examples" / "notebooks" / "iris_classifier.ipynb"
# The README's screenshot (tracked) is rewritten only on request: PROMOTER_REFRESH_SCREENSHOT=1.
SCREENSHOT = (
    REPO / "docs" / "images"
    if os.environ.get("PROMOTER_REFRESH_SCREENSHOT")
    else Path(os.environ.get("TMPDIR", "/tmp"))
) / "promote-dialog.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IRIS_PARAMETERS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# The first papermill run in a fresh server imports scikit-learn and starts a kernel.
SLOW_MS = 120_000


@dataclass
class Lab:
    """A running JupyterLab: its URL, token and root directory."""

    url: str
    token: str
    root: Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_user_settings(settings_dir: Path) -> None:
    """User settings for a quiet, deterministic JupyterLab.

    No news prompt or update check (there is no web), and every cell in the DOM (no windowing)
    so the test can reach any cell.
    """
    overrides = {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
    }
    for plugin, values in overrides.items():
        path = settings_dir / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def wait_until_up(lab: Lab, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``/api/status`` until the server answers (about 2 s), or fail with its log."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer within 60 s:\n{log.read_text()}")


def assert_extension_installed(lab: Lab) -> None:
    """Fail early, and say why, when the venv lacks the prebuilt frontend."""
    with urllib.request.urlopen(f"{lab.url}/lab?token={lab.token}", timeout=10) as page:
        if b"promoter-jupyterlab" not in page.read():
            pytest.fail("JupyterLab does not list promoter-jupyterlab: run `make install`")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """``jupyter lab`` as a subprocess over a temporary root with a copy of the iris example."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(IRIS, root / IRIS.name)
    settings = tmp_path / "user-settings"
    write_user_settings(settings)
    port = free_port()
    lab = Lab(url=f"http://127.0.0.1:{port}", token=secrets.token_hex(16), root=root)
    log = tmp_path / "jupyter-lab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        f"--ServerApp.token={lab.token}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        f"--LabApp.user_settings_dir={settings}",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(lab, process, log)
        assert_extension_installed(lab)
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_generated_tests(service: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` inside the generated folder, free of this session's pytest state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=service,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def page(lab: Lab) -> Iterator[Page]:
    """A headless Chromium page with the iris notebook open in JupyterLab."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1200})
            page.goto(f"{lab.url}/lab/tree/{IRIS.name}?token={lab.token}&reset")
            yield page
        finally:
            browser.close()


def test_promote_button_generates_a_working_service(lab: Lab, page: Page) -> None:
    toolbar = page.locator(".jp-NotebookPanel-toolbar")
    button = toolbar.get_by_role("button", name="Promote")
    expect(button).to_be_visible(timeout=60_000)
    # The tooltip sits on the toolkit's <jp-button> host, around the shadow-DOM <button>.
    host = toolbar.locator('[data-command="promoter:promote"]')
    expect(host).to_have_attribute("title", "Promote to service")
    button.click()

    dialog = page.locator(".jp-Dialog")
    names = dialog.locator(".jp-Promoter-parameters tbody tr td:first-child")
    expect(names).to_have_text(IRIS_PARAMETERS, timeout=SLOW_MS)
    expect(dialog.locator(".jp-Promoter-endpoint")).to_contain_text("POST /iris_classifier")
    expect(dialog.locator(".jp-Promoter-response .jp-Promoter-tree").first).to_contain_text(
        "species: string"
    )
    expect(dialog.locator(".jp-Promoter-cells")).to_contain_text("parameters")
    expect(dialog.locator('input[name="out_dir"]')).to_have_value("iris_classifier_service")
    # Let the "Running ..." toast slide away so the screenshot shows the dialog alone.
    expect(page.locator(".Toastify__toast")).to_have_count(0, timeout=10_000)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    dialog.get_by_role("button", name="Generate").click()
    # The README opens once the service is written.
    expect(page.locator(".lm-TabBar-tab", has_text="README.md")).to_be_visible(timeout=SLOW_MS)
    expect(page.get_by_text("Service written to iris_classifier_service/")).to_be_visible()

    service = lab.root / "iris_classifier_service"
    assert (service / "app" / "main.py").is_file()
    assert (service / "README.md").is_file()
    result = run_generated_tests(service)
    assert result.returncode == 0, result.stdout + result.stderr


def cell_tags(notebook: Path) -> dict[int, list[str]]:
    """The tags of each tagged cell, by index, as saved on disk."""
    cells = json.loads(notebook.read_text())["cells"]
    return {
        i: cell["metadata"]["tags"] for i, cell in enumerate(cells) if "tags" in cell["metadata"]
    }


def test_cell_role_commands_move_the_response_tag(lab: Lab, page: Page) -> None:
    notebook = lab.root / IRIS.name
    before = cell_tags(notebook)
    assert before[15] == ["response"]
    assert 17 not in before

    # The last code cell (index 17, after the response) becomes the response, via the
    # cell context menu; the contract allows one response cell, so cell 15 loses its tag.
    last = page.locator(".jp-NotebookPanel .jp-CodeCell").last
    expect(last).to_be_visible(timeout=60_000)
    last.locator(".jp-InputPrompt").click()
    last.locator(".jp-InputPrompt").click(button="right")
    page.get_by_text("Promoter Cell Role").hover()
    page.get_by_text("Tag Cell as Response").click()
    page.keyboard.press("Control+s")

    expected = {**{i: t for i, t in before.items() if i != 15}, 17: ["response"]}
    deadline = time.monotonic() + 20
    while cell_tags(notebook) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cell_tags(notebook) == expected
