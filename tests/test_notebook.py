from pathlib import Path

import pytest

from promoter import ContractError, NotebookReadError, UsageError
from promoter.reading.notebook import Role, read_notebook, route_for, snake_case
from tests.helpers import EXAMPLES, write_notebook


def test_roles_follow_tags_then_position(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "Churn Score.ipynb",
        ("markdown", "# Churn score\n\nScores a customer.\n\nMore text.", []),
        ("code", "import math", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "y = x + 1", []),
        ("code", "y", ["skip"]),
        ("code", "table = {}", ["setup"]),
        ("code", "{'y': y}", ["response"]),
        ("code", "print('scratch')", []),
    )
    nb = read_notebook(path)
    roles = [c.role for c in nb.cells]
    assert roles == [
        Role.MARKDOWN,
        Role.SETUP,
        Role.PARAMETERS,
        Role.HANDLER,
        Role.SKIP,
        Role.SETUP,
        Role.RESPONSE,
        Role.SKIP,
    ]
    assert nb.summary == "Churn score"
    assert nb.description == "Scores a customer."
    assert nb.route == "/churn_score"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Churn Score", "churn_score"),
        ("myNotebook-v2", "my_notebook_v2"),
        ("2024 report", "nb_2024_report"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected
    assert route_for(Path(f"{name}.ipynb")) == "/" + expected


def test_route_and_settings_from_metadata(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "x", ["response"]),
        metadata={"route": "/v1/score", "name": "scorer", "timeout": 5},
    )
    nb = read_notebook(path)
    assert (nb.route, nb.settings.name, nb.settings.timeout) == ("/v1/score", "scorer", 5.0)


def test_job_timeout_defaults_to_an_hour_and_is_read_from_metadata(tmp_path: Path) -> None:
    cells = (("code", "x = 1", ["parameters"]), ("code", "x", ["response"]))
    default = read_notebook(write_notebook(tmp_path / "a.ipynb", *cells))
    assert default.settings.job_timeout == 3600.0
    set_ = read_notebook(write_notebook(tmp_path / "b.ipynb", *cells, metadata={"job_timeout": 90}))
    assert set_.settings.job_timeout == 90.0


@pytest.mark.parametrize("value", [0, -5, "1h", True, None, [60]])
def test_bad_job_timeout_is_a_contract_error(tmp_path: Path, value: object) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "x", ["response"]),
        metadata={"job_timeout": value},
    )
    with pytest.raises(ContractError, match=r"metadata\.promoter\.job_timeout .* seconds"):
        read_notebook(path)


def test_bad_route_is_a_contract_error(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "x", ["response"]),
        metadata={"route": "no-slash\nimport os"},
    )
    with pytest.raises(ContractError, match="route"):
        read_notebook(path)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        read_notebook(tmp_path / "nope.ipynb")


def test_truncated_json_names_the_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text((EXAMPLES / "text_statistics.ipynb").read_text()[:500])
    with pytest.raises(NotebookReadError) as info:
        read_notebook(path)
    assert "not valid JSON" in str(info.value) and "line" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("depth", [990, 100_000])
def test_json_nested_too_deeply_is_a_read_error(tmp_path: Path, depth: int) -> None:
    """Issue 13: past the recursion limit json.loads raised RecursionError (an internal error)."""
    path = tmp_path / "deep.ipynb"
    path.write_text('{"nbformat": 4, "x": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(NotebookReadError, match="nests too deeply") as info:
        read_notebook(path)
    assert str(path) in str(info.value)


def test_cells_without_ids_get_stable_ids(tmp_path: Path) -> None:
    source = (EXAMPLES / "text_statistics.ipynb").read_text()
    import json

    data = json.loads(source)
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(data))
    first = [c.id for c in read_notebook(path).cells]
    assert first == [c.id for c in read_notebook(path).cells]
    assert first[0] == "cell-0"


def test_execution_mode_is_validated(tmp_path: Path) -> None:
    cells = (("code", "x = 1", ["parameters"]), ("code", "x", ["response"]))
    path = write_notebook(tmp_path / "nb.ipynb", *cells, metadata={"execution": "inline"})
    assert read_notebook(path).settings.execution == "inline"
    path = write_notebook(tmp_path / "bad.ipynb", *cells, metadata={"execution": "fast"})
    with pytest.raises(ContractError, match="execution"):
        read_notebook(path)


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("files", "data/*.csv", "glob strings"),
        ("files", ["data/*.csv", " "], "glob strings"),
        ("maps", ["$.counts", "counts"], "JSON paths into the response"),
        ("records", [3], "JSON paths into the response"),
        ("shared", ["cache", "not a name"], "names"),
        ("shared", ["cache\n"], "names"),
    ],
)
def test_list_settings_are_validated(tmp_path: Path, key: str, value: object, what: str) -> None:
    cells = [("code", "x = 1", ["parameters"]), ("code", "x", ["response"])]
    path = write_notebook(tmp_path / "nb.ipynb", *cells, metadata={key: value})
    with pytest.raises(ContractError, match=f"metadata.promoter.{key} .* must be a list of {what}"):
        read_notebook(path)
