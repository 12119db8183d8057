"""The CLI: every command documents itself; errors are one message, never a traceback."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promoter._cli import app
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


def test_inspect_static_json() -> None:
    result = run_cli("inspect", "--static", "--json", EXAMPLES / "shipping_quote.ipynb")
    assert result.returncode == 0, result.output
    data = json.loads(result.stdout)
    assert data["route"] == "/shipping_quote"
    assert {p["name"] for p in data["parameters"]} >= {"weight_kg", "service", "coupon"}
    assert data["response_schema"] is None


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
