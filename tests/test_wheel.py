"""Templates travel with the code: a service renders from the built wheel, not the checkout."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, ROOT

pytestmark = pytest.mark.slow


def test_convert_from_the_wheel(tmp_path: Path) -> None:
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    build = subprocess.run(
        [*pip_wheel, "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("promoter-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "promoter/templates/service/app/main.py.j2" in names
    assert "promoter/py.typed" in names
    unpacked = tmp_path / "wheel"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import promoter, promoter.building.resources as r, sys;"
        "print(promoter.__file__); print(r.template_dir())"
    )
    env = {"PYTHONPATH": str(unpacked), "PATH": str(Path(sys.executable).parent)}
    where = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert all(line.startswith(str(unpacked)) for line in where.stdout.split())
    out = tmp_path / "service"
    notebook = EXAMPLES / "text_statistics.ipynb"
    convert = subprocess.run(
        [sys.executable, "-m", "promoter", "convert", str(notebook), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the checkout, whose promoter/ would shadow the wheel's
    )
    assert convert.returncode == 0, convert.stderr
    assert (out / "app" / "main.py").is_file()


_PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]


def _source_tree(tmp_path: Path) -> Path:
    """This checkout's committed files plus the working tree's build configuration, without the
    built JupyterLab extension: what `git clone` gives a user."""
    tree = tmp_path / "src"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    for name in ("pyproject.toml", "hatch_build.py"):
        shutil.copy(ROOT / name, tree / name)
    assert not (tree / "promoter" / "labextension").exists()
    return tree


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="the source tree comes from git")
def test_building_from_source_without_node_says_so_in_one_line(tmp_path: Path) -> None:
    tree = _source_tree(tmp_path)
    venv_bin = Path(sys.executable).parent
    assert shutil.which("node", path=str(venv_bin)) is None
    build = subprocess.run(
        [*_PIP_WHEEL, "-w", str(tmp_path / "dist"), str(tree)],
        capture_output=True,
        text=True,
        env={"PATH": str(venv_bin), "HOME": str(tmp_path)},
        timeout=600,
    )
    out = build.stdout + build.stderr
    assert build.returncode != 0
    assert "needs Node.js 20 (`node` is not on PATH): install Node.js 20" in out
    assert "the wheel `make dist` builds (no Node needed)" in out
    assert "Traceback" not in out


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="the source tree comes from git")
def test_a_wheel_without_the_extension_is_refused_by_make_dist_check(tmp_path: Path) -> None:
    tree = _source_tree(tmp_path)
    build = subprocess.run(
        [*_PIP_WHEEL, "-q", "-w", str(tmp_path / "dist"), str(tree)],
        capture_output=True,
        text=True,
        env={**os.environ, "HATCH_BUILD_NO_HOOKS": "true"},
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("promoter-*.whl"))
    checked = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_wheel.py"), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 1
    assert "no JupyterLab extension" in checked.stderr and "make dist" in checked.stderr
