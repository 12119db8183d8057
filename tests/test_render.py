"""Generated code is safe and reviewable: notebook text only ever lands as literals."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from promoter.building.filters import codeindent, pyrepr
from tests.helpers import run_cli, write_notebook

HOSTILE = "\"\"\" ''' {{ 7*7 }} {% if x %} \\ \n __import__('os').system('touch PWNED') # }}"


def test_pyrepr_round_trips_hostile_values() -> None:
    for value in [HOSTILE, {'a"b': [1, 2.5, None]}, ("x",), {1, 2}, float("inf"), "x" * 300]:
        assert (
            eval(pyrepr(value), {"__builtins__": {"float": float, "frozenset": frozenset}}) == value
        )


def test_codeindent_leaves_multiline_strings_alone() -> None:
    code = 'query = """\nselect *\nfrom t\n"""\nx = 1'
    assert codeindent(code, 4) == '    query = """\nselect *\nfrom t\n"""\n    x = 1'


@pytest.mark.slow
def test_hostile_notebook_text_cannot_inject_code(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "evil'name {{ 7*7 }}.ipynb",
        ("markdown", f'# Title """ {{{{ 7*7 }}}} \\\n\n{HOSTILE}', []),
        (
            "code",
            f"text = {HOSTILE!r}  # desc \"\"\" ''' {{{{ 7*7 }}}} __import__('os') \\\n"
            "größe = 3  # unicode name\n"
            "json = 1  # shadows a BaseModel attribute\n"
            f"mapping = {{{HOSTILE!r}: 1}}",
            ["parameters"],
        ),
        (
            "code",
            f"{{'text': text, 'größe': größe, 'json': json, {HOSTILE!r}: 1, 'm': mapping}}",
            ["response"],
        ),
    )
    out = tmp_path / "service"
    result = run_cli("convert", notebook, "-o", out)
    assert result.returncode == 0, result.output
    for path in out.rglob("*.py"):
        ast.parse(path.read_text())  # every generated file parses
    # Jinja never evaluated notebook text: the template syntax survives as literal text.
    assert "{{ 7*7 }}" in (out / "app" / "models.py").read_text()
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=out, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=out,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    golden = json.loads((out / "tests/golden").glob("*.json").__next__().read_text())
    assert golden["response"]["text"] == HOSTILE
