"""Templates travel with the code: a service renders from the built wheel, not the checkout."""

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
