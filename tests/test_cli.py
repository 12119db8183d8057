"""The CLI: every command documents itself; errors are one message, never a traceback."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promoter.frontends.cli import app
from tests.helpers import EXAMPLES, FIXTURES, run_cli

runner = CliRunner()


@pytest.mark.parametrize("command", ["inspect", "convert", "serve"])
def test_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--debug" in result.output


def test_root_help_and_version() -> None:
    assert "convert" in runner.invoke(app, ["--help"]).output
    assert runner.invoke(app, ["--version"]).output.startswith("promoter ")


def test_usage_error_exit_code() -> None:
    assert runner.invoke(app, ["convert", "nb.ipynb"]).exit_code == 2  # missing -o
    result = run_cli("inspect", "no/such/notebook.ipynb")
    assert result.returncode == 2 and "no such notebook" in result.stderr


@pytest.mark.slow
def test_inspect_static_json() -> None:
    result = run_cli("inspect", "--static", "--json", EXAMPLES / "shipping_quote.ipynb")
    assert result.returncode == 0, result.output
    data = json.loads(result.stdout)
    assert data["route"] == "/shipping_quote"
    assert {p["name"] for p in data["parameters"]} >= {"weight_kg", "service", "coupon"}
    assert data["response_schema"] is None


@pytest.mark.slow
def test_debug_shows_the_traceback() -> None:
    notebook = FIXTURES / "bad" / "syntax_error_in_handler.ipynb"
    assert "Traceback" not in run_cli("inspect", "--static", notebook).output
    assert "Traceback" in run_cli("inspect", "--static", "--debug", notebook).output


@pytest.mark.slow
def test_inspect_runs_the_notebook(tmp_path: Path) -> None:
    result = run_cli("inspect", EXAMPLES / "loan_calculator.ipynb")
    assert result.returncode == 0, result.output
    assert "Response" in result.stdout and "list[LoanCalculatorRow]" in result.stdout
    assert "Kernel is running over TCP" not in result.output


def test_invalid_service_name_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(
        "convert", EXAMPLES / "text_statistics.ipynb", "-o", tmp_path / "s", "--name", "Bad Name"
    )
    assert result.returncode == 2 and "invalid service name" in result.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_help_is_rich_and_shows_argument_names() -> None:
    result = run_cli("check", "--help")
    assert result.returncode == 0, result.output
    assert "─ Options ─" in result.stdout  # Rich panels
    assert "Usage: promoter check [OPTIONS] [PATH]..." in result.stdout
    convert_help = run_cli("convert", "--help").stdout
    assert "Usage: promoter convert [OPTIONS] NOTEBOOK..." in convert_help
    for command in ("inspect", "convert", "serve", "check"):
        assert "{" not in run_cli(command, "--help").stdout  # no `{notebooks}...` placeholders


def test_version_is_the_installed_package_version() -> None:
    from importlib.metadata import version

    import promoter

    assert promoter.__version__ == version("promoter")
    assert run_cli("--version").stdout.strip() == f"promoter {promoter.__version__}"


def test_convert_of_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    result = run_cli("convert", EXAMPLES, "-o", tmp_path / "out")
    assert result.returncode == 2, result.output
    assert f"{EXAMPLES} is a folder, not a notebook" in result.stderr
    assert "no such notebook" not in result.stderr and "promoter check" in result.stderr
    assert not (tmp_path / "out").exists()


def test_inspect_numbers_cells_from_one() -> None:
    result = run_cli("inspect", "--static", EXAMPLES / "shipping_quote.ipynb")
    assert result.returncode == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("  ")]
    numbers = [int(row[0]) for row in rows if row and row[0].isdigit()]
    assert numbers[:3] == [1, 2, 3]


@pytest.mark.slow
def test_a_failing_convert_prints_its_error_apart_from_the_progress_bar(tmp_path: Path) -> None:
    """On a terminal the progress bar is live while the kernel runs; the error follows it."""
    import os
    import pty
    import re
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    command = [sys.executable, "-m", "promoter", "convert", FIXTURES / "bad" / "cell_raises.ipynb"]
    process = subprocess.Popen(
        [*map(str, command), "-o", str(tmp_path / "out")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 1
    raw = b"".join(chunks).decode("utf-8", errors="replace")
    assert "running" in raw, raw  # the progress bar was shown
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # terminal control sequences
    at = text.index("error:")
    assert text[:at].endswith(("\n", "\r")), repr(text[max(at - 80, 0) : at + 20])
    assert "running" not in text[at:]  # no bar drawn after (or over) the message
