"""The JupyterLab extension end to end: real JupyterLab, real Chromium, real files on disk.

Starts ``jupyter lab`` on 127.0.0.1 with a token over a temporary root holding the iris example
(plus a broken copy and a slow notebook), opens notebooks in headless Chromium through
Playwright and uses the extension as a person would: the "Promote" button and its dialog
(progress, errors with "Go to cell", Generate, Try it), the role labels on the cells, and the
server's bound on concurrent kernel runs. Each test saves a screenshot.

Screenshots go to the test's temporary folder; ``PROMOTER_UPDATE_SCREENSHOTS=1`` also writes
them to ``docs/images/`` (the README's pictures), so a plain test run never touches tracked
files.

It exercises the installed package: the prebuilt frontend in ``share/jupyter/labextensions`` and
the config file enabling the server extension (``make install`` puts both in the venv).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("lab"),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)",
    ),
]

REPO = Path(__file__).resolve().parent.parent
IRIS = REPO / "examples" / "notebooks" / "iris_classifier.ipynb"
DOCS_IMAGES = REPO / "docs" / "images"
SLOW = "slow_steps.ipynb"
BROKEN = "iris_broken.ipynb"
# The broken copy raises in this cell (0-based index); the UI calls it "cell 15".
BROKEN_CELL = 14
SLOW_STEPS = 5
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
    """A running JupyterLab: its URL, token and root directory.

    One server serves the whole session; each test works in a folder of its own under the
    root (``folder``, its API path), so the files, jobs and services it sees are its own.
    """

    url: str
    token: str
    root: Path
    pid: int = 0
    folder: str = ""

    def api(self, path: str) -> Any:
        """GET a server API path with the token; the decoded JSON."""
        with urllib.request.urlopen(f"{self.url}/{path}?token={self.token}", timeout=10) as r:
            return json.loads(r.read())

    def path(self, name: str) -> str:
        """The API path of ``name`` in this test's folder."""
        return f"{self.folder}/{name}" if self.folder else name

    def jobs(self) -> list[dict[str, Any]]:
        """The server's jobs on this test's notebooks, oldest first."""
        jobs: list[dict[str, Any]] = self.api("promoter/jobs")["jobs"]
        return [j for j in jobs if j["notebook"].startswith(self.path(""))]

    def services(self) -> list[dict[str, Any]]:
        """The "Try it" services of this test's folder."""
        services: list[dict[str, Any]] = self.api("promoter/services")["services"]
        return [s for s in services if s["out_dir"].startswith(self.path(""))]


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


def write_broken_copy(path: Path) -> None:
    """The iris example whose first handler cell raises when the kernel runs it."""
    notebook = nbformat.read(IRIS, as_version=4)
    cell = notebook.cells[BROKEN_CELL]
    cell.source = 'raise RuntimeError("the model is not ready")\n' + cell.source
    nbformat.write(notebook, path)


def write_slow_notebook(path: Path) -> None:
    """A notebook whose handler cells sleep: slow enough to watch its progress."""
    cells = [nbformat.v4.new_markdown_cell("# Slow steps")]
    cells.append(nbformat.v4.new_code_cell("import time", metadata={"tags": ["setup"]}))
    cells.append(nbformat.v4.new_code_cell("n = 2", metadata={"tags": ["parameters"]}))
    cells += [nbformat.v4.new_code_cell("time.sleep(1.5)") for _ in range(SLOW_STEPS)]
    cells.append(nbformat.v4.new_code_cell("{'n': n}", metadata={"tags": ["response"]}))
    # A kernelspec, or JupyterLab opens it with a "Select kernel" dialog.
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec})
    nbformat.write(notebook, path)


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Save a screenshot in the test's folder, and in docs/images when asked to refresh them."""
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("PROMOTER_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMAGES / name)
    return path


# Module scope, and one xdist worker for the whole module (the "lab" group, make test's
# --dist loadgroup): the E2E tests share one JupyterLab and one Chromium, and both are gone
# before that worker runs any other module. Playwright's sync API keeps an asyncio loop
# running on the main thread while it is open: a session-scoped one made every later
# ``asyncio.run`` on that worker fail.
@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """``jupyter lab`` as a subprocess over a temporary root, shared by the session's tests."""
    home = tmp_path_factory.mktemp("lab")
    root = home / "root"
    root.mkdir()
    settings = home / "user-settings"
    write_user_settings(settings)
    port = free_port()
    lab = Lab(url=f"http://127.0.0.1:{port}", token=secrets.token_hex(16), root=root)
    log = home / "jupyter-lab.log"
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
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--LabApp.user_settings_dir={settings}",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    lab.pid = process.pid
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


@pytest.fixture
def lab(lab_server: Lab, request: pytest.FixtureRequest) -> Lab:
    """The session's JupyterLab, seen from a fresh folder holding the test's notebooks."""
    folder = re.sub(r"\W+", "_", request.node.name.removeprefix("test_"))[:40]
    root = lab_server.root / folder
    root.mkdir()
    shutil.copy(IRIS, root / IRIS.name)
    write_broken_copy(root / BROKEN)
    write_slow_notebook(root / SLOW)
    return Lab(lab_server.url, lab_server.token, root, lab_server.pid, folder)


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


_CONTEXTS: list[BrowserContext] = []


@pytest.fixture(autouse=True)
def _close_pages() -> Iterator[None]:
    """Close the test's browser contexts (the browser is the session's)."""
    yield
    while _CONTEXTS:
        _CONTEXTS.pop().close()


def open_notebook(browser: Browser, lab: Lab, name: str) -> Page:
    """A new page, in a context of its own, with notebook ``name`` open in JupyterLab."""
    context = browser.new_context(viewport={"width": 1280, "height": 1200})
    _CONTEXTS.append(context)
    page = context.new_page()
    page.goto(f"{lab.url}/lab/tree/{lab.path(name)}?token={lab.token}&reset")
    return page


@pytest.fixture
def page(lab: Lab, browser: Browser) -> Page:
    """A headless Chromium page with the iris notebook open in JupyterLab."""
    return open_notebook(browser, lab, IRIS.name)


def click_promote(page: Page) -> None:
    toolbar = page.locator(".jp-NotebookPanel-toolbar")
    button = toolbar.get_by_role("button", name="Promote")
    expect(button).to_be_visible(timeout=60_000)
    button.click()


def role_labels(page: Page) -> list[str]:
    """The role label of every cell, in order ("" for cells without one)."""
    labels: list[str] = page.eval_on_selector_all(
        ".jp-NotebookPanel .jp-Notebook .jp-Cell",
        "cells => cells.map(c => c.querySelector(':scope > .jp-Promoter-cellRole')"
        "?.dataset.role ?? '')",
    )
    return labels


def test_promote_button_generates_a_working_service(lab: Lab, page: Page, tmp_path: Path) -> None:
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
    expect(dialog.locator('input[name="out_dir"]')).to_have_value(
        lab.path("iris_classifier_service")
    )
    screenshot(page, tmp_path, "promote-dialog.png")

    dialog.get_by_role("button", name="Generate").click()
    # The README opens once the service is written.
    expect(page.locator(".lm-TabBar-tab", has_text="README.md")).to_be_visible(timeout=SLOW_MS)
    expect(
        page.get_by_text(f"Service written to {lab.path('iris_classifier_service')}/")
    ).to_be_visible()

    # Try it: the server serves the service, the dialog sends the example request through
    # Jupyter's proxy and shows the answer beside the notebook's own.
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_role("button", name="Try it").click()
    verdict = dialog.locator(".jp-Promoter-verdict")
    expect(verdict).to_have_text(
        "The service answers exactly what the notebook answered.", timeout=SLOW_MS
    )
    service_answer = json.loads(dialog.locator(".jp-Promoter-serviceAnswer pre").inner_text())
    notebook_answer = json.loads(dialog.locator(".jp-Promoter-notebookAnswer pre").inner_text())
    assert service_answer == notebook_answer
    assert set(service_answer) >= {"species", "confidence"}
    docs = dialog.locator(".jp-Promoter-docsLink").get_attribute("href")
    service_name = f"{lab.folder}-iris_classifier_service"
    assert docs is not None and docs.endswith(f"/promoter/try/{service_name}/docs")
    # The link works in the browser's Jupyter session (cookie auth), not on a bare port.
    assert page.request.get(docs).status == 200
    openapi = page.request.get(docs.removesuffix("docs") + "openapi.json").json()
    assert "/iris_classifier" in openapi["paths"]
    screenshot(page, tmp_path, "try-it.png")
    try_docs_in_the_browser(page, urllib.parse.urljoin(page.url, docs), tmp_path)
    assert [s["name"] for s in lab.services()] == [service_name]
    # A second click stops it.
    dialog.get_by_role("button", name="Stop service").click()
    expect(dialog.locator(".jp-Promoter-tryOutput")).to_have_text("Service stopped.")
    assert lab.services() == []

    service = lab.root / "iris_classifier_service"
    assert (service / "app" / "main.py").is_file()
    assert (service / "README.md").is_file()
    result = run_generated_tests(service)
    assert result.returncode == 0, result.stdout + result.stderr


def try_docs_in_the_browser(page: Page, docs: str, tmp_path: Path) -> None:
    """The service's /docs, opened in the user's session: "Try it out" -> "Execute" answers 200.

    Nothing is blocked on the way: no Content-Security-Policy report, no 403 for the XSRF token.
    """
    docs_page = page.context.new_page()
    blocked: list[str] = []
    docs_page.on(
        "console",
        lambda m: blocked.append(m.text) if m.type == "error" else None,
    )
    docs_page.goto(docs)
    operation = docs_page.locator(".opblock-post").first
    expect(operation).to_be_visible(timeout=30_000)
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status")
    expect(status).to_have_text("200", timeout=30_000)
    expect(operation.locator(".live-responses-table .microlight").first).to_contain_text("species")
    screenshot(docs_page, tmp_path, "try-it-docs.png")
    docs_page.close()
    assert blocked == [], "\n".join(blocked)


def cell_tags(notebook: Path) -> dict[int, list[str]]:
    """The tags of each tagged cell, by index, as saved on disk ({} while a save is half done)."""
    try:
        cells = json.loads(notebook.read_text())["cells"]
    except json.JSONDecodeError:
        return {}
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


def test_right_click_tags_the_cell_under_the_pointer(lab: Lab, page: Page) -> None:
    """Issue 26: with cell 16 (the response) selected, right-clicking cell 15 and choosing
    Skip tagged cell 16 and dropped its response tag. The menu acts on the clicked cell."""
    notebook = lab.root / IRIS.name
    before = cell_tags(notebook)
    assert before[15] == ["response"] and 14 not in before
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    expect(cells.nth(15)).to_be_visible(timeout=60_000)
    # Cells 15 and 16 selected, 16 active: a right-click inside the selection keeps it so.
    cells.nth(14).locator(".jp-InputPrompt").click()
    cells.nth(15).locator(".jp-InputPrompt").click(modifiers=["Shift"])
    assert_eventually(lambda: active_cell_index(page) == 15)
    cells.nth(14).locator(".jp-InputPrompt").click(button="right")
    page.get_by_text("Promoter Cell Role").hover()
    page.get_by_text("Tag Cell as Skip").click()
    page.keyboard.press("Control+s")

    expected = {**before, 14: ["skip"]}
    assert_eventually(lambda: cell_tags(notebook) == expected)
    assert active_cell_index(page) == 15


def put_setting(lab: Lab, values: dict[str, Any]) -> None:
    """Save the extension's user settings through JupyterLab's settings API."""
    request = urllib.request.Request(
        f"{lab.url}/lab/api/settings/promoter-jupyterlab:plugin",
        data=json.dumps({"raw": json.dumps(values)}).encode(),
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def test_a_setting_takes_the_role_labels_off(lab: Lab, browser: Browser) -> None:
    """Issue 26: ``showRoleLabels: false`` leaves the cells as JupyterLab draws them."""
    put_setting(lab, {"showRoleLabels": False})
    try:
        page = open_notebook(browser, lab, IRIS.name)
        panel = page.locator(".jp-NotebookPanel")
        expect(panel).to_have_attribute("data-promoter-labels", "off", timeout=60_000)
        promote = page.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Promote")
        expect(promote).to_be_visible()
        expect(page.locator(".jp-Cell").first).to_be_visible()
        assert page.locator(".jp-Promoter-cellRole").count() == 0
        assert page.locator(".jp-Promoter-cell").count() == 0
    finally:
        put_setting(lab, {})


def test_cell_labels_follow_the_tags(lab: Lab, page: Page, tmp_path: Path) -> None:
    """Each code cell shows its role; tagging a cell changes the labels at once."""
    panel = page.locator(".jp-NotebookPanel")
    expect(panel).to_have_attribute("data-promoter-labels", "on", timeout=60_000)
    # The server's static inspection has answered (not only the local position rule).
    expect(panel).to_have_attribute("data-promoter-roles", "server", timeout=60_000)
    labels = role_labels(page)
    assert [labels[i] for i in (2, 3, 5, 9, 12, 14, 15, 17)] == [
        "setup",
        "setup",
        "skip",
        "setup",
        "parameters",
        "handler",
        "response",
        "not promoted",
    ]
    assert labels[0] == labels[1] == ""  # markdown cells have no role

    # Tag the last cell (after the response, so not promoted) as the response: it becomes the
    # response, and the old response cell a handler cell by its position. Unsaved: the labels
    # follow the notebook as edited.
    last = page.locator(".jp-NotebookPanel .jp-CodeCell").last
    last.locator(".jp-InputPrompt").click()
    last.locator(".jp-InputPrompt").click(button="right")
    page.get_by_text("Promoter Cell Role").hover()
    page.get_by_text("Tag Cell as Response").click()
    badge = last.locator(".jp-Promoter-cellRole")
    expect(badge).to_have_text("response")
    expect(badge).to_have_attribute("title", re.compile("last expression"))
    assert_eventually(lambda: role_labels(page)[15] == "handler")
    expect(last).to_have_class(re.compile("jp-Promoter-cell-response"))
    screenshot(page, tmp_path, "cell-roles.png")


def assert_eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    """Poll ``check`` until it holds (UI updates arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def active_cell_index(page: Page) -> int:
    """The 0-based index of the active cell among the notebook's cells."""
    index: int = page.eval_on_selector_all(
        ".jp-NotebookPanel .jp-Notebook .jp-Cell",
        "cells => cells.findIndex(c => c.classList.contains('jp-mod-active'))",
    )
    return index


def test_error_go_to_cell_selects_the_failing_cell(
    lab: Lab, browser: Browser, tmp_path: Path
) -> None:
    page = open_notebook(browser, lab, BROKEN)
    click_promote(page)
    dialog = page.locator(".jp-Dialog")
    location = dialog.locator(".jp-Promoter-location")
    expect(location).to_contain_text(f"cell {BROKEN_CELL + 1} (id 6dd672e4)", timeout=SLOW_MS)
    expect(dialog.locator(".jp-Promoter-errorMessage")).to_contain_text("the model is not ready")
    go = dialog.get_by_role("button", name=f"Go to cell {BROKEN_CELL + 1}")
    screenshot(page, tmp_path, "go-to-cell.png")
    assert active_cell_index(page) == 0
    go.click()
    expect(dialog).to_have_count(0)
    assert_eventually(lambda: active_cell_index(page) == BROKEN_CELL)
    active = page.locator(".jp-NotebookPanel .jp-Cell.jp-mod-active")
    expect(active).to_be_in_viewport()
    expect(active).to_contain_text("the model is not ready")
    # JupyterLab's own count of the active cell ("Cell 15/18") agrees with the dialog's number.
    status = page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"^Cell \d+/\d+$"))
    expect(status).to_have_text(re.compile(rf"^Cell {BROKEN_CELL + 1}/\d+$"))


def worker_kernels(lab: Lab) -> int:
    """Kernels the extension's workers run now (processes under a promoter worker)."""
    count = 0
    for process in psutil.Process(lab.pid).children(recursive=True):
        try:
            if "promoter.frontends.jupyter_worker" in " ".join(process.cmdline()):
                count += sum(
                    "ipykernel" in " ".join(child.cmdline()) for child in process.children()
                )
        except psutil.NoSuchProcess:
            continue
    return count


def test_progress_shows_cells_done_and_cancel_stops_the_kernel(
    lab: Lab, browser: Browser, tmp_path: Path
) -> None:
    page = open_notebook(browser, lab, SLOW)
    click_promote(page)
    progress = page.locator(".jp-Dialog .jp-Promoter-progress")
    # An intermediate count: some cells done, not all (each sleeping cell takes 1.5 s).
    page.wait_for_function(
        """() => {
            const p = document.querySelector('.jp-Dialog .jp-Promoter-progress');
            return p && p.dataset.state === 'running' && Number(p.dataset.done) >= 2
                && Number(p.dataset.done) < Number(p.dataset.total);
        }""",
        timeout=SLOW_MS,
    )
    done, total = (int(progress.get_attribute(f"data-{k}") or 0) for k in ("done", "total"))
    assert 2 <= done < total
    expect(progress.locator(".jp-Promoter-progressText")).to_contain_text(f"of {total}")
    screenshot(page, tmp_path, "progress.png")
    assert worker_kernels(lab) == 1

    page.locator(".jp-Dialog").get_by_role("button", name="Cancel").click()
    jobs = lab.jobs()
    assert_eventually(lambda: [j["state"] for j in lab.jobs()] == ["cancelled"])
    assert len(jobs) == 1
    assert_eventually(lambda: worker_kernels(lab) == 0)


def test_quick_clicks_start_at_most_two_kernels(lab: Lab, browser: Browser, tmp_path: Path) -> None:
    """Five people (tabs, a notebook each) click Promote at once: two kernels run, three queue."""
    names = [f"slow_{i}.ipynb" for i in range(5)]
    for name in names:
        write_slow_notebook(lab.root / name)
    pages = [open_notebook(browser, lab, name) for name in names]
    for page in pages:
        expect(
            page.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Promote")
        ).to_be_visible(timeout=SLOW_MS)
    for page in pages:
        click_promote(page)
    queued = pages[-1].locator('.jp-Promoter-progress[data-state="queued"]')
    expect(queued).to_contain_text("Queued", timeout=30_000)
    pages[-1].bring_to_front()
    screenshot(pages[-1], tmp_path, "queued.png")

    most_kernels = most_running = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        jobs = lab.jobs()
        most_running = max(most_running, sum(j["state"] == "running" for j in jobs))
        most_kernels = max(most_kernels, worker_kernels(lab))
        if len(jobs) == 5 and all(j["state"] == "done" for j in jobs):
            break
        time.sleep(0.1)
    states = [j["state"] for j in lab.jobs()]
    assert states == ["done"] * 5
    assert most_running == 2
    assert 1 <= most_kernels <= 2
    for page in pages:
        cells = page.locator(".jp-Dialog .jp-Promoter-parameters tbody tr td:first-child")
        expect(cells).to_have_text(["n"])
