"""Every corpus notebook through the real CLI: a correct result or one clear error, nothing left.

``tests/corpus/expected.json`` says which notebooks must convert (``ok``) and which must fail
(``error``); ``tests/corpus/README.md`` says why for each. Kernel runs are the cost here, so each
notebook is converted once; ``inspect --static`` (no kernel) runs for all, ``check`` once over
the failing notebooks and a few good ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTED: dict[str, str] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
NOTEBOOKS = sorted(EXPECTED)
# Failures found before any cell is read: the message names the file only.
FILE_LEVEL = {
    "empty_file.ipynb",
    "markdown_only.ipynb",
    "nbformat_5_unknown.ipynb",
    "non_utf8_bytes.ipynb",
    "truncated_json.ipynb",
}
# Cell-level failures without a line (the kernel dies or times out mid-cell, SystemExit).
NO_LINE = {"infinite_loop_timeout.ipynb", "kernel_dies.ipynb", "sys_exit_in_cell.ipynb"}
# Seconds any one cell may run: enough for every `ok` notebook on a loaded CI machine.
TIMEOUT = {"infinite_loop_timeout.ipynb": "3"}


def _assert_one_clear_error(name: str, stdout: str, stderr: str) -> None:
    output = stdout + stderr
    assert "Traceback" not in output, output
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert str(CORPUS / name) in errors[0], errors[0]
    if name not in FILE_LEVEL:
        assert ", cell " in errors[0], errors[0]
    if name not in FILE_LEVEL | NO_LINE:
        assert ", line " in errors[0], errors[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_expected_covers_the_corpus() -> None:
    assert set(EXPECTED) == {p.name for p in CORPUS.glob("*.ipynb")}
    assert len(EXPECTED) >= 40


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_inspect_static(name: str) -> None:
    result = run_cli("inspect", "--static", "--json", CORPUS / name, timeout=120)
    if result.returncode == 0:
        data = json.loads(result.stdout)
        assert data["notebook"] == str(CORPUS / name)
        return
    # Some `error` notebooks only fail when they run; `ok` ones never fail statically.
    assert EXPECTED[name] == "error", result.output
    assert result.returncode in (1, 2), result.output
    _assert_one_clear_error(name, result.stdout, result.stderr)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_convert(name: str, tmp_path: Path) -> None:
    out = tmp_path / "service"
    timeout = TIMEOUT.get(name, "120")
    result = run_cli("convert", CORPUS / name, "-o", out, "--timeout", timeout, timeout=300)
    if EXPECTED[name] == "ok":
        assert result.returncode == 0, result.output
        assert "Traceback" not in result.output
        assert (out / "app" / "main.py").is_file()
        assert (out / "promoter.lock.json").is_file()
        assert _leftovers(tmp_path) == ["service"]
    else:
        assert result.returncode in (1, 2), result.output
        _assert_one_clear_error(name, result.stdout, result.stderr)
        assert _leftovers(tmp_path) == [], "a failed conversion left files behind"


CHECKED_OK = ["Churn Score.ipynb", "response_dataclass.ipynb", "utf8_bom.ipynb"]


def test_check(tmp_path: Path) -> None:
    """`promoter check` over the failing notebooks and a few good ones, in one run."""
    names = [n for n in NOTEBOOKS if EXPECTED[n] == "error"] + CHECKED_OK
    for name in names:
        shutil.copy2(CORPUS / name, tmp_path / name)
    # Named one by one: a folder search skips notebooks without promoter tags (markdown_only).
    paths = [tmp_path / name for name in names]
    result = run_cli("check", "--json", "-j", "2", "--timeout", "5", *paths, timeout=600)
    assert "Traceback" not in result.output
    assert result.returncode == 1, result.output
    report = json.loads(result.stdout)
    status = {Path(nb["notebook"]).name: nb["status"] for nb in report["notebooks"]}
    assert set(status) == set(names)
    for name in names:
        want = "passed" if EXPECTED[name] == "ok" else "failed"
        assert status[name] == want, (name, status[name])
