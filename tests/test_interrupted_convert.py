"""Files are never lost: a killed `convert` leaves the old service or the new, never a mix.

`promoter convert` builds in a temp folder beside the service and swaps it in atomically. The
test kills real `convert` processes (SIGKILL: no cleanup runs) at seeded random moments after the
build folder appears, and checks that the service folder always matches one of its lock files
exactly, and that the next conversion removes what the killed one left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_notebook

pytestmark = pytest.mark.slow

KILLS = 5


def _version(path: Path, default: int) -> bytes:
    return write_notebook(
        path.with_name(f"v{default}.ipynb"),
        ("markdown", "# Counter\n\nCounts up.", []),
        ("code", f"start = {default}  # Where to start", ["parameters"]),
        ("code", "values = list(range(start, start + 3))", []),
        ("code", '{"values": values, "total": sum(values)}', ["response"]),
    ).read_bytes()


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _assert_whole(folder: Path, versions: dict[str, str]) -> str:
    """The folder is exactly what its lock says, and the lock is one of the known versions."""
    lock = json.loads((folder / "promoter.lock.json").read_text(encoding="utf-8"))
    files = _snapshot(folder)
    del files["promoter.lock.json"]
    assert files == lock["files"], "the folder does not match its own lock: a mix"
    (notebook,) = lock["notebooks"]
    assert notebook["sha256"] in versions.values()
    return next(k for k, v in versions.items() if v == notebook["sha256"])


def _temp_folders(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_killed_convert_leaves_old_or_new(tmp_path: Path) -> None:
    rng = random.Random(7)
    notebook = tmp_path / "counter.ipynb"
    out = tmp_path / "service"
    contents = {1: _version(notebook, 1), 2: _version(notebook, 2)}
    versions = {
        label: hashlib.sha256(contents[n]).hexdigest() for label, n in (("old", 1), ("new", 2))
    }
    notebook.write_bytes(contents[1])
    assert run_cli("convert", notebook, "-o", out).returncode == 0
    assert _assert_whole(out, versions) == "old"
    notebook.write_bytes(contents[2])

    seen: set[str] = set()
    for _ in range(KILLS):
        process = subprocess.Popen(
            [sys.executable, "-m", "promoter", "convert", str(notebook), "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".service.building-") for p in tmp_path.iterdir()):
            assert process.poll() is None, "convert ended before it started building"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 1.5))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        state = _assert_whole(out, versions)
        seen.add(state)
        # Aim the next kill at a real change again.
        notebook.write_bytes(contents[2 if state == "old" else 1])

    result = run_cli("convert", notebook, "-o", out)
    assert result.returncode == 0, result.output
    _assert_whole(out, versions)
    assert _temp_folders(tmp_path, "service") == [], "stale temp folders were not cleaned up"


def test_edited_file_is_kept_unless_forced(tmp_path: Path) -> None:
    notebook = tmp_path / "counter.ipynb"
    notebook.write_bytes(_version(notebook, 1))
    out = tmp_path / "service"
    assert run_cli("convert", notebook, "-o", out).returncode == 0
    pipeline = out / "app" / "pipeline.py"
    edited = pipeline.read_text(encoding="utf-8") + "\n# my local fix\n"
    pipeline.write_text(edited, encoding="utf-8")
    before = _snapshot(out)

    refused = run_cli("convert", notebook, "-o", out)
    assert refused.returncode == 1, refused.output
    assert "app/pipeline.py" in refused.stderr
    assert "Traceback" not in refused.output
    assert _snapshot(out) == before
    assert _temp_folders(tmp_path, "service") == []

    forced = run_cli("convert", notebook, "-o", out, "--force")
    assert forced.returncode == 0, forced.output
    assert "# my local fix" not in pipeline.read_text(encoding="utf-8")
    (backup,) = [p for p in tmp_path.iterdir() if p.name.startswith("service.bak-")]
    assert (backup / "app" / "pipeline.py").read_text(encoding="utf-8") == edited
    assert _snapshot(backup) == before
