"""Runaway cells: output without end, and processes or threads that setup leaves running.

A run of the notebook (the kernel) and the verification of the generated service (a fresh
interpreter) must both end: output is capped, memory stays bounded, and nothing the notebook
started outlives ``promoter convert``. Each test runs the real CLI in a subprocess; a
regression fails by its generous ``timeout=`` (a hang), never by a wall-clock assertion.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import write_notebook

pytestmark = pytest.mark.slow

_MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": proc.returncode, "out": proc.stdout + proc.stderr, "peak_kb": peak}))
"""


def _convert(*args: str | Path, cwd: Path) -> dict[str, object]:
    """``promoter ARGS`` in a subprocess, with the peak memory of it and its children.

    A regression hangs: past the timeout the test fails, and kills what it started first.
    """
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "promoter", *map(str, args)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for process in family:
            with contextlib.suppress(psutil.Error):
                process.kill()
        proc.wait()
        pytest.fail(f"promoter {' '.join(map(str, args))} did not finish")
    assert proc.returncode == 0, stderr
    result: dict[str, object] = json.loads(stdout)
    return result


def _marker() -> str:
    """A sleep duration no other process on the machine uses (found by its command line)."""
    return f"600.{random.randrange(10**8):08d}"


def _left(marker: str) -> list[str]:
    """The live processes whose command line carries ``marker`` (zombies are gone)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if marker in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(" ".join(cmdline))
    return found


def _none_left(marker: str) -> list[str]:
    """``_left(marker)``, after giving killed processes a moment to be reaped (no time assert)."""
    for _ in range(50):
        if not _left(marker):
            return []
        time.sleep(0.1)
    return _left(marker)


_PRINT_FOREVER = 'while True:\n    print("x" * 1000)'
# Catches the interrupt promoter sends and goes on printing: killed after a few interrupts.
_PRINT_THROUGH_INTERRUPTS = (
    'while True:\n    try:\n        print("x" * 1000)\n    except KeyboardInterrupt:\n        pass'
)


@pytest.mark.parametrize(
    ("code", "timeout"),
    # A plain loop gets a short cell timeout: without the cap the process would grow by
    # ~100 MB/s until it. The stubborn loop keeps the default (600 s): the test's own
    # timeout fails it if promoter waits for the cell timeout.
    [(_PRINT_FOREVER, "60"), (_PRINT_THROUGH_INTERRUPTS, "600")],
    ids=["plain", "catches-interrupts"],
)
def test_a_cell_printing_without_end_stops_with_a_clear_error(
    tmp_path: Path, code: str, timeout: str
) -> None:
    nb = write_notebook(
        tmp_path / "printer.ipynb",
        ("code", "n = 3", ["parameters"]),
        ("code", code, []),
        ("code", "result = {'n': n}\nresult", ["response"]),
        metadata={"max_output_mb": 5},
    )
    found = _convert("convert", nb, "-o", tmp_path / "svc", "--timeout", timeout, cwd=tmp_path)
    out = str(found["out"])
    assert found["rc"] == 1, out
    cell = json.loads(nb.read_text())["cells"][1]
    assert f"printer.ipynb, cell 2 (id {cell['id']})" in out
    assert "printed more than 5 MB of output" in out and "max_output_mb" in out
    assert "skip" in out and "print less" in out
    assert "Traceback" not in out
    # Bounded: a plain convert peaks near 70 MB here; 5 MB of captured output adds little.
    assert int(str(found["peak_kb"])) < 600_000, found["peak_kb"]
    assert not (tmp_path / "svc").exists()


def test_the_default_output_cap_is_fifty_megabytes(tmp_path: Path) -> None:
    from promoter.reading.notebook import read_notebook

    cells = (("code", "x = 1", ["parameters"]), ("code", "x", ["response"]))
    assert read_notebook(write_notebook(tmp_path / "nb.ipynb", *cells)).settings.max_output_mb == 50
    bad = write_notebook(tmp_path / "bad.ipynb", *cells, metadata={"max_output_mb": 0})
    found = _convert("inspect", "--static", bad, cwd=tmp_path)
    assert found["rc"] == 1
    assert "metadata.promoter.max_output_mb 0 must be a positive number" in str(found["out"])


_SETUP_CHILDREN = """\
import subprocess
plain = subprocess.Popen(["sleep", "{a}"])
# One that ignores the interrupt jupyter_client sends the kernel's group when it shuts down,
# and one that leaves the session: both still end with the run.
deaf = subprocess.Popen(["sh", "-c", "trap '' INT TERM HUP; exec sleep {b}"])
away = subprocess.Popen(["sleep", "{c}"], start_new_session=True)
"""


def test_setup_child_processes_do_not_hang_convert_or_outlive_it(tmp_path: Path) -> None:
    markers = [_marker() for _ in range(3)]
    nb = write_notebook(
        tmp_path / "children.ipynb",
        ("code", _SETUP_CHILDREN.format(a=markers[0], b=markers[1], c=markers[2]), []),
        ("code", "n = 3", ["parameters"]),
        ("code", "result = {'n': n}\nresult", ["response"]),
    )
    # Both the kernel and the verifier run the setup; each starts its own three sleeps.
    found = _convert("convert", nb, "-o", tmp_path / "svc", cwd=tmp_path)
    # A service whose setup starts a helper process can work: success, nothing left behind.
    assert found["rc"] == 0, found["out"]
    assert "reproduces the notebook's default answer" in str(found["out"])
    for marker in markers:
        assert _none_left(marker) == [], marker


def test_a_setup_non_daemon_thread_does_not_hang_convert(tmp_path: Path) -> None:
    marker = _marker()
    nb = write_notebook(
        tmp_path / "thread.ipynb",
        (
            "code",
            "import subprocess, threading, time\n"
            f"worker = threading.Thread(target=time.sleep, args=({marker},))\n"
            "worker.start()\n"
            f'child = subprocess.Popen(["sleep", "{marker}"])',
            [],
        ),
        ("code", "n = 3", ["parameters"]),
        ("code", "result = {'n': n}\nresult", ["response"]),
    )
    # The thread would keep the kernel and the verifier alive for ten minutes (a non-daemon
    # thread blocks the interpreter's exit); the timeout below fails the test long before.
    found = _convert("convert", nb, "-o", tmp_path / "svc", cwd=tmp_path)
    assert found["rc"] == 0, found["out"]
    assert _none_left(marker) == []
    # Neither the kernel nor the verifier (both run in the notebook's or service's folder).
    for process in psutil.process_iter(["cwd", "status"]):
        cwd = process.info["cwd"] or ""
        if process.info["status"] != psutil.STATUS_ZOMBIE:
            assert not cwd.startswith(str(tmp_path)), process


def test_a_service_printing_without_end_while_verified_is_stopped(tmp_path: Path) -> None:
    # The notebook prints a little in Jupyter; outside it (the service, its verification), the
    # setup prints without end. The verifier's output goes to a file, capped.
    nb = write_notebook(
        tmp_path / "chatty.ipynb",
        (
            "code",
            "import sys\n"
            "if 'ipykernel' not in sys.modules:\n"
            "    while True:\n"
            "        print('y' * 1000)",
            [],
        ),
        ("code", "n = 3", ["parameters"]),
        ("code", "result = {'n': n}\nresult", ["response"]),
        metadata={"max_output_mb": 5},
    )
    found = _convert("convert", nb, "-o", tmp_path / "svc", cwd=tmp_path)
    out = str(found["out"])
    assert found["rc"] == 1, out
    assert "chatty.ipynb" in out
    assert "printed more than 5 MB while running its setup" in out
    assert "Traceback" not in out
    assert not (tmp_path / "svc").exists()


def test_convert_timeout_bounds_the_verification_too(tmp_path: Path) -> None:
    # In Jupyter the setup finishes; outside it (the service, its verification) it waits for
    # a child nobody stops. `--timeout 2` is per cell: 3 promoted cells + 30 s of start-up.
    marker = _marker()
    nb = write_notebook(
        tmp_path / "waits.ipynb",
        (
            "code",
            "import subprocess, sys, time\n"
            "if 'ipykernel' not in sys.modules:\n"
            f"    subprocess.Popen(['sleep', '{marker}'])\n"
            "    time.sleep(600)",
            [],
        ),
        ("code", "n = 3", ["parameters"]),
        ("code", "{'n': n}", ["response"]),
    )
    found = _convert("convert", nb, "-o", tmp_path / "svc", "--timeout", "2", cwd=tmp_path)
    out = str(found["out"])
    assert found["rc"] == 1, out
    assert (
        "waits.ipynb" in out
        and "still running its setup (the notebook's setup cells) after 36 s" in out
    ), out
    assert "Traceback" not in out
    assert _none_left(marker) == []
