"""``_response``: the response model inferred from the notebook's JSON answer."""

from promoter._exceptions import Location
from promoter.analysis.response import infer_response, safe_attr


def test_nested_objects_become_models_and_lists_typed() -> None:
    sample = {"label": "setosa", "scores": [0.9, 0.1], "meta": {"model": "knn", "k": 3}}
    schema, warnings = infer_response(sample, "builtins.dict", "Iris", None, Location())
    assert warnings == []
    assert schema.model == schema.root == "IrisResponse"
    fields = {f.key: f.annotation for f in schema.classes[-1].fields}
    assert fields == {"label": "str", "scores": "list[float]", "meta": "IrisMeta"}
    assert [c.name for c in schema.classes] == ["IrisMeta", "IrisResponse"]


def test_a_list_of_records_is_a_root_model_of_rows() -> None:
    schema, _ = infer_response([{"a": 1}, {"a": 2}], "pandas.DataFrame", "T", None, Location())
    assert schema.is_root_model and schema.root == "list[TRow]"


def test_an_explicit_annotation_wins_and_a_bad_one_warns() -> None:
    schema, _ = infer_response({"a": 1}, "builtins.dict", "T", "dict[str, int]", Location())
    assert schema.annotated and schema.root == "dict[str, int]"
    schema, warnings = infer_response({"a": 1}, "builtins.dict", "T", "os.system", Location())
    assert not schema.annotated and "inferred instead" in warnings[0][0]


def test_safe_attr_avoids_keywords_reserved_and_taken_names() -> None:
    taken: set[str] = set()
    assert [safe_attr(k, taken) for k in ("class", "model_dump", "int", "a b", "a_b")] == [
        "field_class",
        "field_model_dump",
        "int_",
        "a_b",
        "a_b_2",
    ]
