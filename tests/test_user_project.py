"""promoter in the user's own project, as a new user meets it (issue 27).

The wheel is built from this checkout (as `make dist` does) and installed with pip into a fresh
virtual environment, with no Node on PATH, beside the notebook's own libraries. The project has
``notebooks/``, ``data/``, ``models/`` (a model saved with joblib), git and pre-commit; every
command runs from that environment as a subprocess, the way the user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.helpers import ROOT, git, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

#: The notebook's own libraries, and the tools of the user's project.
PROJECT_REQUIREMENTS = ["pandas", "joblib", "pytest", "pre-commit"]


_PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]


def build_wheel(out: Path) -> Path:
    """The wheel of this checkout, as `make dist` builds it, checked complete."""
    build = subprocess.run(
        [*_PIP_WHEEL, "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = out.glob("promoter-*.whl")
    checked = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_wheel.py"), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    return wheel


class Environment:
    """A fresh virtual environment whose PATH has its own bin and git, and no Node."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "venv" / "bin"
        self.path = os.pathsep.join([str(self.bin), str(_system_tools_without_node(root))])
        # The user's shell: its settings (certificates, package index, caches) with this
        # environment's bin first and no Node; never this test run's virtual environment.
        inherited = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        self.env = {
            **inherited,
            "PATH": self.path,
            "PRE_COMMIT_HOME": str(root / "pre-commit-home"),
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }

    def run(
        self, *args: str | Path, cwd: Path, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the environment (``promoter``, ``pytest``, ...) in ``cwd``."""
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


#: Node and the tools that run it: absent from the user's PATH.
_NODE_TOOLS = ("node", "nodejs", "npm", "npx", "corepack", "yarn", "yarnpkg")


def _system_tools_without_node(root: Path) -> Path:
    """A folder of links to the system's commands (git needs sed, basename...), Node's left out."""
    tools = root / "tools"
    tools.mkdir()
    for folder in (Path("/usr/local/bin"), Path("/usr/bin"), Path("/bin")):
        for command in sorted(folder.iterdir()) if folder.is_dir() else []:
            link = tools / command.name
            if command.name not in _NODE_TOOLS and not link.exists() and not link.is_symlink():
                link.symlink_to(command)
    return tools


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    root = tmp_path_factory.mktemp("user")
    wheel = build_wheel(root / "dist")
    venv.create(root / "venv", with_pip=True)
    env = Environment(root)
    assert shutil.which("node", path=env.path) is None
    install = env.run(
        env.bin / "python",
        "-m",
        "pip",
        "install",
        "-q",
        f"{wheel}[lab]",
        *PROJECT_REQUIREMENTS,
        cwd=root,
        timeout=1500,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    yield env


def test_the_wheel_brings_the_jupyterlab_extension_without_node(environment: Environment) -> None:
    labextensions = environment.run(
        environment.bin / "jupyter", "labextension", "list", cwd=environment.root
    )
    out = labextensions.stdout + labextensions.stderr
    assert labextensions.returncode == 0, out
    [line] = [ln for ln in out.splitlines() if "promoter-jupyterlab" in ln]
    import promoter

    assert f"v{promoter.__version__}" in line and "enabled" in line and "OK" in line
    servers = environment.run(
        environment.bin / "jupyter", "server", "extension", "list", cwd=environment.root
    )
    out = servers.stdout + servers.stderr
    assert any("promoter" in ln and "enabled" in ln for ln in out.splitlines()), out


def _project(root: Path) -> Path:
    """A data scientist's project: a notebook reading data/ and a joblib model in models/.

    The notebook is in ``notebooks/`` (reading ``../data/sales.csv``: the project root, found by
    its pyproject.toml, bounds what travels), beside an exploration notebook without promoter
    tags, which folder scans skip.
    """
    import joblib

    (root / "data").mkdir(parents=True)
    (root / "data" / "sales.csv").write_text(
        "year,price\n2022,231000\n2023,240500\n2024,251250\n2025,262000\n"
    )
    (root / "models").mkdir()
    joblib.dump({"base": 20000.0, "per_m2": 3150.5}, root / "models" / "price.joblib")
    write_notebook(
        root / "notebooks" / "price.ipynb",
        ("markdown", "# House price\n\nAn estimate from the area, and recent sales.", []),
        (
            "code",
            "import datetime\n\nimport joblib\nimport pandas as pd\n\n"
            'model = joblib.load("../models/price.joblib")\n'
            'sales = pd.read_csv("../data/sales.csv")',
            [],
        ),
        (
            "code",
            "area: float = 70.0  # Floor area in m²\n"
            "when: datetime.date = datetime.date(2024, 1, 1)  # Valuation date",
            ["parameters"],
        ),
        (
            "code",
            'recent = sales[sales["year"] <= when.year]\n'
            'estimate = model["base"] + model["per_m2"] * area',
            [],
        ),
        (
            "code",
            '{"estimate": round(estimate, 2), "median": float(recent["price"].median()), '
            '"year": when.year}',
            ["response"],
        ),
        ("code", "sales.plot()", ["skip"]),
    )
    write_notebook(
        root / "notebooks" / "exploration.ipynb",
        ("code", "import pandas as pd\npd.read_csv('../data/sales.csv').describe()", []),
    )
    (root / "pyproject.toml").write_text('[project]\nname = "house-prices"\nversion = "0.1.0"\n')
    return root


def _hooks(root: Path) -> str:
    """promoter's hook manifest in a repository of its own; returns its commit (the `rev:`)."""
    hooks = root / "promoter-hooks"
    hooks.mkdir()
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", hooks)
    git(hooks, "init", "-q")
    git(hooks, "add", ".")
    git(hooks, "commit", "-q", "-m", "hooks")
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=hooks, capture_output=True, text=True, check=True
    ).stdout.strip()


def _saved_in_jupyterlab(path: Path) -> None:
    """What opening, running and saving in JupyterLab changes: outputs, counts, kernel metadata."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {
        "name": "house-env",
        "display_name": "Python (house)",
        "language": "python",
    }
    nb.metadata["language_info"] = {
        "name": "python",
        "version": "3.11.9",
        "mimetype": "text/x-python",
    }
    for count, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = count + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"run {count}\n")]
        cell.metadata["execution"] = {"iopub.status.idle": "2026-12-07T22:00:00Z"}
    nb.cells[-1].source = "sales.plot(kind='bar')"  # a skipped cell's code is not the service
    nbformat.write(nb, path)


def test_drift_and_hooks_in_the_users_project(environment: Environment, tmp_path: Path) -> None:
    project = _project(tmp_path / "house")
    rev = _hooks(tmp_path)
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {tmp_path / 'promoter-hooks'}\n    rev: {rev}\n    hooks:\n"
        "      - id: promoter-static\n      - id: promoter-check\n"
    )
    promoter = environment.bin / "promoter"
    converted = environment.run(
        promoter, "convert", "notebooks/price.ipynb", "-o", "services/price", cwd=project
    )
    assert converted.returncode == 0, converted.stdout + converted.stderr
    lock = json.loads((project / "services" / "price" / "promoter.lock.json").read_text())
    [entry] = lock["notebooks"]
    assert set(entry["data"]) == {"../../data/sales.csv", "../../models/price.joblib"}
    git(project, "init", "-q", "-b", "main")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "a notebook and its service")
    pre_commit = [environment.bin / "pre-commit", "run"]

    # The date parameter keeps its type in the service: `when.year` answers.
    answers = environment.run(
        environment.bin / "python",
        "-c",
        "import json; from fastapi.testclient import TestClient; from app.main import app\n"
        "with TestClient(app) as c: print(json.dumps([c.post('/price', json={}).json(),"
        " c.post('/price', json={'when': '2023-06-30'}).json()]))",
        cwd=project / "services" / "price",
    )
    assert answers.returncode == 0, answers.stderr
    default, dated = json.loads(answers.stdout)
    assert default["year"] == 2024 and dated["year"] == 2023 and dated["median"] == 235750.0

    # Opened, run and saved in JupyterLab: not stale, by `check --static` or the hook.
    _saved_in_jupyterlab(project / "notebooks" / "price.ipynb")
    static = environment.run(promoter, "check", "--static", ".", cwd=project)
    out = static.stdout + static.stderr
    assert static.returncode == 0, out
    assert "ok   notebooks/price.ipynb" in out and "skip notebooks/exploration.ipynb" in out
    git(project, "add", "notebooks/price.ipynb")
    hook = environment.run(*pre_commit, cwd=project)
    assert hook.returncode == 0, hook.stdout + hook.stderr
    assert "promoter check --static" in hook.stdout and "Passed" in hook.stdout
    git(project, "commit", "-q", "-m", "saved in JupyterLab")

    # Only the data changed: the service answers from old data, so it is stale.
    sales = project / "data" / "sales.csv"
    sales.write_text(sales.read_text().replace("240500", "239611"))
    static = environment.run(promoter, "check", "--static", ".", cwd=project)
    out = static.stdout + static.stderr
    assert static.returncode == 1, out
    assert "services/price is stale: its data file ../../data/sales.csv changed" in out
    assert "promoter convert notebooks/price.ipynb -o services/price" in out
    git(project, "add", "data/sales.csv")
    hook = environment.run(*pre_commit, cwd=project)
    out = hook.stdout + hook.stderr
    assert hook.returncode == 1, out
    assert "Failed" in out and "its data file ../../data/sales.csv changed" in out
    assert "Traceback" not in out

    # A file no service carries is no reason to check anything.
    (project / "NOTES.md").write_text("notes\n")
    git(project, "reset", "-q", "data/sales.csv")
    git(project, "add", "NOTES.md")
    hook = environment.run(*pre_commit, cwd=project)
    assert hook.returncode == 0, hook.stdout + hook.stderr

    # pytest --promoter . collects the notebook, not the service's own tests...
    collected = environment.run(
        environment.bin / "pytest", "--promoter", ".", "--collect-only", "-q", cwd=project
    )
    out = collected.stdout + collected.stderr
    assert "notebooks/price.ipynb::promoter-check" in out, out
    assert "services/price/tests" not in out
    # ... which pass from any working folder: they run from their service's folder, with its
    # own copy of the data (the project's data/ changed above).
    service_tests = environment.run(environment.bin / "pytest", "-q", "services/price", cwd=project)
    assert service_tests.returncode == 0, service_tests.stdout + service_tests.stderr
