"""Schemas from evidence: the response model is merged from the answers to the defaults and to
``metadata.promoter.examples``, reads data keys as maps, and accepts what the service answers.

The end-to-end test converts four fixture notebooks (a word count, a per-state dict whose keys
change with a parameter, records with optional keys, a response ending in ``print``) into one
service, serves it with uvicorn and validates, with the generated response models, the answers
over real HTTP to the defaults and to two parameter sets that are not among the examples.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from promoter._exceptions import ContractError, Location
from promoter.analysis.response import infer_response
from promoter.reading.notebook import read_notebook
from tests.helpers import FIXTURES, run_cli, write_notebook

SCHEMAS = FIXTURES / "schemas"
NOTEBOOKS = ["word_count", "per_state", "optional_records", "print_response"]
#: Parameter sets that are neither the defaults nor the notebook's examples.
OTHER_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "word_count": [{"text": "Hello world, hello again"}, {"text": "zebra"}],
    "per_state": [{"region": "mountain"}, {"region": "midwest", "min_millions": 12.0}],
    "optional_records": [{"n": 7}, {"n": 1, "vip": True}],
    "print_response": [{"x": 5}, {"x": -1}],
}


def _infer(samples: list[Any], **overrides: Any) -> Any:
    schema, warnings = infer_response(
        samples[0], "builtins.dict", "Nb", None, Location(), examples=samples[1:], **overrides
    )
    return schema, [message for message, _ in warnings]


def _shapes(schema: Any) -> dict[str, str]:
    return {d.path: d.kind for d in schema.shapes}


def _fields(schema: Any, name: str) -> dict[str, str]:
    [cls] = [c for c in schema.classes if c.name == name]
    return {f.key: f.annotation for f in cls.fields}


# --- the merge, without kernels ----------------------------------------------------------------


def test_keys_that_change_between_answers_make_a_map() -> None:
    schema, _ = _infer(
        [
            {"total": 9, "counts": {"the": 2, "fox": 1}},
            {"total": 7, "counts": {"a": 3, "rose": 3}},
            {"total": 6, "counts": {"to": 2, "be": 2}},
        ]
    )
    assert _fields(schema, "NbResponse") == {"total": "int", "counts": "dict[str, int]"}
    assert _shapes(schema) == {"$": "record", "$.counts": "map"}
    [decision] = [d for d in schema.shapes if d.path == "$.counts"]
    assert "keys change" in decision.reason


def test_a_top_level_map_of_records_whose_keys_follow_a_parameter() -> None:
    schema, _ = _infer(
        [
            {"CA": {"population": 39.0, "capital": "Sacramento"}, "OR": {"population": 4.2}},
            {"NY": {"population": 19.6, "capital": "Albany"}},
        ]
    )
    assert schema.root == "dict[str, NbItem]" and schema.is_root_model
    assert _fields(schema, "NbItem") == {"population": "float", "capital": "str | None"}


def test_a_filter_that_drops_some_keys_still_makes_a_map() -> None:
    # The same region, a higher threshold: the keys of one answer are a subset of the other's.
    schema, _ = _infer([{"TX": 30.5, "FL": 22.6, "GA": 11.0}, {"TX": 30.5, "FL": 22.6}])
    assert schema.root == "dict[str, float]"
    # A record whose optional field has another type stays a record.
    record, _ = _infer([{"total": 3, "label": "x"}, {"total": 4}])
    assert _fields(record, "NbResponse") == {"total": "int", "label": "str | None"}


def test_rows_with_numbered_columns_stay_records() -> None:
    schema, _ = _infer([[{"x1": 1.0, "x2": 2.0, "x3": 3.0}, {"x1": 0.5, "x2": 1.5, "x3": 2.5}]])
    assert schema.root == "list[NbRow]"
    assert _fields(schema, "NbRow") == {"x1": "float", "x2": "float", "x3": "float"}


def test_one_answer_decides_by_key_shape_and_count() -> None:
    dates, _ = _infer([{"2024-01-01": 3, "2024-01-02": 4}])
    assert dates.root == "dict[str, int]"
    ids, _ = _infer([{"user_1": 1.0, "user_2": 2.0, "user_3": 0.5}])
    assert ids.root == "dict[str, float]"
    hexes, _ = _infer([{"3f2a9c1e": {"n": 1}, "a1b2c3d4": {"n": 2}}])
    assert hexes.root == "dict[str, NbItem]"
    many, _ = _infer([{f"w{chr(97 + i)}x": i for i in range(26)} | {f"z{i}a": 1 for i in range(9)}])
    assert many.root == "dict[str, int]"
    fields, _ = _infer([{"mean": 1.0, "std": 0.5, "label": "x"}])
    assert fields.root == "NbResponse"
    [decision] = fields.shapes
    assert decision.kind == "record"


def test_records_with_optional_keys_and_mixed_types() -> None:
    schema, _ = _infer(
        [
            {"lines": [{"sku": "a", "quantity": 1, "note": "x"}, {"sku": "b", "quantity": 2}]},
            {"lines": [{"sku": "c", "quantity": "3"}], "discount": 0.1},
        ]
    )
    assert _fields(schema, "NbResponse") == {
        "lines": "list[NbLinesItem]",
        "discount": "float | None",
    }
    assert _fields(schema, "NbLinesItem") == {
        "sku": "str",
        "quantity": "int | str",
        "note": "str | None",
    }


def test_answers_of_different_kinds_are_a_union_the_model_wraps() -> None:
    schema, _ = _infer([{"a": 1}, None])
    assert (schema.root, schema.model) == ("NbItem | None", "NbResponse")
    assert schema.is_root_model
    assert [c.name for c in schema.classes] == ["NbItem"]


def test_overrides_per_json_path_and_an_unknown_path_warns() -> None:
    samples = [{"counts": {"the": 2, "fox": 1}, "stats": {"2020": 1, "2021": 2}}]
    schema, warnings = _infer(samples, maps=["$.counts", "$.nothing"], records=["$.stats"])
    assert _fields(schema, "NbResponse")["counts"] == "dict[str, int]"
    assert _fields(schema, "NbResponse")["stats"] == "NbStats"
    assert _fields(schema, "NbStats") == {"2020": "int", "2021": "int"}
    assert warnings == ["metadata.promoter.maps names $.nothing, which is no object of the answers"]


def test_a_none_response_is_a_warning() -> None:
    schema, warnings = infer_response(None, "builtins.NoneType", "Nb", None, Location())
    assert schema.root == "None"
    assert any("value is None" in m and "print(...)" in m for m, _ in warnings)


def test_the_openapi_example_cuts_long_lists() -> None:
    schema, _ = _infer([{"rows": [{"a": i} for i in range(1000)]}])
    assert schema.example == {"rows": [{"a": 0}, {"a": 1}, {"a": 2}]}


def test_settings_are_validated(tmp_path: Path) -> None:
    cells = (("code", "x = 1", ["parameters"]), ("code", "x", ["response"]))
    for bad in ({"examples": {"x": 1}}, {"examples": [1]}, {"maps": ["counts"]}, {"records": 1}):
        path = write_notebook(tmp_path / "bad.ipynb", *cells, metadata=bad)
        with pytest.raises(ContractError, match=r"metadata\.promoter"):
            read_notebook(path)
    good = {"examples": [{"x": 2}], "maps": ["$.a[*].b", '$["odd key"].*'], "records": ["$"]}
    settings = read_notebook(write_notebook(tmp_path / "ok.ipynb", *cells, metadata=good)).settings
    assert settings.examples == ({"x": 2},) and settings.records == ("$",)


def test_an_example_that_is_no_valid_request_is_a_contract_error(tmp_path: Path) -> None:
    import promoter

    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1  # A number", ["parameters"]),
        ("code", "{'x': x}", ["response"]),
        metadata={"examples": [{"y": 2}]},
    )
    with pytest.raises(ContractError, match=r"examples\[0\] is not a valid request: y: Extra"):
        promoter.inspect(path)
    wrong = write_notebook(
        tmp_path / "wrong.ipynb",
        ("code", "x = 1  # A number", ["parameters"]),
        ("code", "{'x': x}", ["response"]),
        metadata={"examples": [{"x": 2}, {"x": "many"}]},
    )
    with pytest.raises(ContractError, match=r"examples\[1\] is not a valid request: x: Input"):
        promoter.inspect(wrong, execute=False).execute()


@pytest.mark.slow
def test_an_example_that_fails_in_the_kernel_is_named(tmp_path: Path) -> None:
    import promoter
    from promoter._exceptions import ExecutionError

    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1  # A number", ["parameters"]),
        ("code", "assert x > 0, 'x must be positive'", []),
        ("code", "{'x': x}", ["response"]),
        metadata={"examples": [{"x": -1}]},
    )
    with pytest.raises(ExecutionError) as caught:
        promoter.inspect(path)
    assert caught.value.message.startswith("with metadata.promoter.examples[0]: AssertionError")
    assert caught.value.location.cell_index == 1


# --- end to end: papermill, convert, uvicorn, real HTTP ----------------------------------------


def _models(folder: Path, stem: str) -> ModuleType:
    """The generated models module, loaded under a unique name (it imports only pydantic)."""
    spec = importlib.util.spec_from_file_location(
        f"generated_{stem}_models", folder / "app" / stem / "models.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("schemas")
    for name in NOTEBOOKS:
        shutil.copy(SCHEMAS / f"{name}.ipynb", root / f"{name}.ipynb")
    inspected = run_cli("inspect", root / "word_count.ipynb", "--json", cwd=root)
    assert inspected.returncode == 0, inspected.output
    result = run_cli(
        "convert", *(f"{n}.ipynb" for n in NOTEBOOKS), "-o", "service", "--json", cwd=root
    )
    assert result.returncode == 0, result.output
    return root / "service", (json.loads(inspected.stdout), json.loads(result.stdout))


@pytest.mark.slow
def test_inspect_shows_which_objects_are_maps_and_why(service: tuple[Path, Any]) -> None:
    inspection, _ = service[1]
    shapes = {s["path"]: s for s in inspection["response_shapes"]}
    assert shapes["$.counts"]["kind"] == "map"
    assert "keys change with the data" in shapes["$.counts"]["reason"]
    assert shapes["$"]["kind"] == "record"
    assert len(inspection["example_responses"]) == 2


@pytest.mark.slow
def test_convert_warns_on_a_none_response_and_reproduces(service: tuple[Path, Any]) -> None:
    _, conversion = service[1]
    assert conversion["fidelity"] == dict.fromkeys(NOTEBOOKS)
    [none] = [w for w in conversion["warnings"] if "value is None" in w["message"]]
    assert none["notebook"].endswith("print_response.ipynb") and none["cell_index"] == 3


@pytest.mark.slow
def test_golden_files_per_sample_and_the_openapi_example(service: tuple[Path, Any]) -> None:
    folder, _ = service
    golden = folder / "tests" / "golden"
    assert sorted(p.name for p in (golden / "per_state").iterdir()) == [
        "example-1.json",
        "example-2.json",
    ]
    south = json.loads((golden / "per_state" / "example-2.json").read_text())
    assert south["request"] == {"region": "south", "min_millions": 20.0}
    assert sorted(south["response"]) == ["FL", "TX"]
    models = _models(folder, "per_state")
    schema = models.PerStateResponse.model_json_schema()
    default = json.loads((golden / "per_state.json").read_text())["response"]
    assert schema["examples"] == [default] and "CA" in default
    request = models.PerStateRequest.model_json_schema()
    assert request["examples"][1:] == [{"region": "east"}, south["request"]]


@pytest.mark.slow
def test_response_models_accept_other_parameter_sets_over_http(
    service: tuple[Path, Any], serve_folder: Any
) -> None:
    folder, _ = service
    server = serve_folder(folder)
    for name in NOTEBOOKS:
        model = getattr(_models(folder, name), f"{_prefix(name)}Response")
        for parameters in [{}, *OTHER_PARAMETERS[name]]:
            response = httpx.post(f"{server.url}/{name}", json=parameters, timeout=60)
            assert response.status_code == 200, (name, response.text)
            model.model_validate(response.json())
    answer = httpx.post(f"{server.url}/per_state", json={"region": "mountain"}, timeout=60).json()
    assert sorted(answer) == ["CO", "NV", "UT"]
    openapi = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    examples = openapi["components"]["schemas"]["WordCountResponse"]["examples"]
    assert examples[0]["counts"]["the"] == 2


@pytest.mark.slow
def test_the_generated_tests_validate_every_golden_answer(service: tuple[Path, Any]) -> None:
    folder, _ = service
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    # Three goldens each (the defaults and two examples), one for print_response: the model
    # accepts each of the notebook's answers, and the service returns each of them.
    lines = tests.stdout.splitlines()
    accepted = [ln for ln in lines if "accepts_the_notebooks_answers" in ln and "PASSED" in ln]
    returned = [ln for ln in lines if "returns_what_the_notebook_returned" in ln and "PASSED" in ln]
    assert len(accepted) == len(returned) == 3 + 3 + 3 + 1


def _prefix(stem: str) -> str:
    return "".join(part.capitalize() for part in stem.split("_"))
