from pathlib import Path

import pytest

from promoter import ParameterError
from promoter.analysis.parameters import infer_request, request_json_schema
from promoter.analysis.types import type_of_value
from promoter.reading.notebook import read_notebook
from tests.helpers import EXAMPLES, write_notebook

PARAMS = """from typing import Annotated, Literal
sepal_length: float = 5.1   # Sepal length in cm
species_hint = "setosa"     # Optional hint, one of the known species
top_k: Annotated[int, Field(ge=1, le=10)] = 3
threshold = 0.5
mode: Literal["fast", "exact"] = "fast"
weights = [1, 2.5]
labels = {"a": [1, 2]}
pair = (1, "x")
note = None
_seed = 42  # private, never exposed
"""


def _request(tmp_path: Path, params: str, *handler: str):
    cells = [("code", "from pydantic import Field", []), ("code", params, ["parameters"])]
    cells += [("code", source, []) for source in handler]
    cells.append(("code", "0", ["response"]))
    nb = read_notebook(write_notebook(tmp_path / "nb.ipynb", *cells))
    return nb, infer_request(nb)


def test_types_defaults_and_descriptions(tmp_path: Path) -> None:
    _, request = _request(tmp_path, PARAMS)
    fields = {p.name: (p.annotation, p.default, p.description) for p in request.parameters}
    assert fields == {
        "sepal_length": ("float", 5.1, "Sepal length in cm"),
        "species_hint": ("str", "setosa", "Optional hint, one of the known species"),
        "top_k": ("Annotated[int, Field(ge=1, le=10)]", 3, None),
        "threshold": ("float", 0.5, None),
        "mode": ("Literal['fast', 'exact']", "fast", None),
        "weights": ("list[float]", [1, 2.5], None),
        "labels": ("dict[str, list[int]]", {"a": [1, 2]}, None),
        "pair": ("tuple[int, str]", (1, "x"), None),
        "note": ("Any | None", None, None),
    }
    assert [p.name for p in request.parameters if p.name.startswith("_")] == []
    assert len(request.private) == 1


def test_we_go_further_than_papermill(tmp_path: Path) -> None:
    """papermill's inspection is the baseline: it knows types only when annotated."""
    import papermill

    nb, request = _request(tmp_path, PARAMS)
    baseline = papermill.inspect_notebook(str(nb.path))
    ours = {p.name: p.annotation for p in request.parameters}
    assert baseline["threshold"]["inferred_type_name"] == "None"
    assert ours["threshold"] == "float"
    assert "_seed" in baseline and "_seed" not in ours  # private names stay private
    assert ours["weights"] == "list[float]"  # typed containers, papermill has no type
    assert baseline["weights"]["inferred_type_name"] == "None"


def test_json_schema_uses_the_same_types(tmp_path: Path) -> None:
    _, request = _request(tmp_path, PARAMS)
    schema = request_json_schema(request)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["top_k"]["maximum"] == 10
    assert schema["properties"]["mode"]["enum"] == ["fast", "exact"]


def test_non_literal_default_names_cell_and_line(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as info:
        _request(tmp_path, "a = 1\nvalues = list(range(3))\n")
    error = info.value
    assert (error.location.cell_index, error.location.line) == (1, 2)
    assert "not a literal" in error.message and "annotate" in (error.hint or "")


def test_non_literal_default_is_fine_when_annotated(tmp_path: Path) -> None:
    _, request = _request(tmp_path, "values: list[int] = list(range(3))\n")
    assert request.parameters[0].annotation == "list[int]"
    assert not request.parameters[0].literal_default


@pytest.mark.parametrize(
    "annotation",
    [
        "MyModel",
        "__import__('os').system('x')",
        "Annotated[int, Field(default_factory=list)]",
        "np.ndarray",
    ],
)
def test_annotations_outside_the_allow_list_are_refused(tmp_path: Path, annotation: str) -> None:
    with pytest.raises(ParameterError, match="unsupported annotation"):
        _request(tmp_path, f"x: {annotation} = 1\n")


def test_builtin_shadowing_parameter_used_later(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="shadows the builtin") as info:
        _request(tmp_path, "sum = 3\n", "total = sum([1, 2])")
    assert info.value.location.cell_index == 2


def test_only_assignments_in_parameters_cell(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="only contain assignments"):
        _request(tmp_path, "x = 1\nprint(x)\n")
    with pytest.raises(ParameterError, match="plain names"):
        _request(tmp_path, "a, b = 1, 2\n")


def test_type_of_value() -> None:
    assert type_of_value([1, "a", None]) == "list[int | str | None]"
    assert type_of_value({}) == "dict[Any, Any]"
    assert type_of_value(True) == "bool"
    with pytest.raises(TypeError):
        type_of_value(b"bytes")


def test_examples_parse() -> None:
    nb = read_notebook(EXAMPLES / "shipping_quote.ipynb")
    names = [p.name for p in infer_request(nb).parameters]
    assert "weight_kg" in names and "service" in names
