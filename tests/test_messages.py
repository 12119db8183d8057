"""Messages that lead somewhere (issue 27): each names the real cause and a fix that fits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promoter
from promoter._exceptions import PromoterError
from tests.helpers import run_cli, write_notebook


def _notebook(path: Path, parameters: str, *later: tuple[str, str, list[str]]) -> Path:
    return write_notebook(
        path,
        ("code", "import datetime\nimport numpy as np", []),
        ("code", parameters, ["parameters"]),
        *later,
        ("code", "{'ok': True}", ["response"]),
    )


def _error(path: Path) -> PromoterError:
    with pytest.raises(PromoterError) as caught:
        promoter.inspect(path, execute=False)
    return caught.value


def test_a_setup_cell_after_parameters_that_uses_one_is_told_so(tmp_path: Path) -> None:
    path = _notebook(
        tmp_path / "rates.ipynb",
        "rate: float = 0.05  # Yearly rate",
        ("code", "table = [rate * year for year in range(10)]", ["setup"]),
    )
    error = _error(path)
    assert "`rate` is a request parameter, and it is used by a setup cell (cell 3" in error.message
    assert "runs once at start-up, before any request" in error.message
    assert "handler cell" in (error.hint or "")


@pytest.mark.parametrize(
    ("default", "suggested"),
    [
        ("datetime.date.today()", "datetime.date"),
        ("datetime.datetime(2024, 1, 1, 9, 30)", "datetime.datetime"),
        ("np.arange(3)", "list[float]"),
        ("len('abc')", "int"),
        ("f'{1}-x'", "str"),
        ("{k: 1.0 for k in 'ab'}", "dict[str, float]"),
    ],
)
def test_the_non_literal_hint_suggests_a_matching_type(
    tmp_path: Path, default: str, suggested: str
) -> None:
    error = _error(_notebook(tmp_path / "nb.ipynb", f"value = {default}"))
    assert "is not a literal" in error.message
    assert f"`value: {suggested} = " in (error.hint or ""), error.hint


def test_a_default_that_does_not_fit_its_annotation_is_an_error(tmp_path: Path) -> None:
    error = _error(_notebook(tmp_path / "nb.ipynb", "when: datetime.date = 'soon'"))
    assert "the default of `when` ('soon') is not a `date`" in error.message


def test_inspect_static_shows_a_computed_default_as_its_source(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "nb.ipynb", "when: datetime.date = datetime.date(2024, 1, 1)")
    result = run_cli("inspect", path, "--static", "--json")
    assert result.returncode == 0, result.stderr
    [field] = json.loads(result.stdout)["parameters"]
    assert field["default_source"] == "datetime.date(2024, 1, 1)"
    text = run_cli("inspect", path, "--static")
    assert "datetime.date(2024, 1, 1) (computed)" in text.stdout


def test_no_such_notebook_offers_a_close_match(tmp_path: Path) -> None:
    _notebook(tmp_path / "notebooks" / "price.ipynb", "area: float = 70.0")
    result = run_cli("inspect", "notebooks/prise.ipynb", "--static", cwd=tmp_path)
    assert result.returncode == 2
    assert "no such notebook: notebooks/prise.ipynb" in result.stderr
    assert "did you mean notebooks/price.ipynb?" in result.stderr
    far = run_cli("inspect", "notebooks/zzz.ipynb", "--static", cwd=tmp_path)
    assert "did you mean" not in far.stderr


def test_the_generated_readme_links_to_no_package_index() -> None:
    from tests.helpers import ROOT

    readme = (ROOT / "templates" / "service" / "README.md.j2").read_text()
    assert "pypi.org" not in readme
