"""``_response``: the response model inferred from the notebook's JSON answer."""

from promoter._exceptions import Location
from promoter.analysis.datamaps import data_keyed
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


def test_dicts_built_from_data_are_maps_without_metadata() -> None:
    """`s.to_dict()`, `dict(zip(...))`, a comprehension, a filled dict, a key named by data
    (issue 22): one answer, two keys each, and still maps, because the code says so."""
    code = [
        "by_store = sales.groupby('store')['revenue'].sum().round(2)\n"
        "best = dict(zip(top.name, top.units))\nshare = {}\nfor row in rows:\n"
        "    share[row.store] = row.share\nline = {'region': region, metric: total}",
    ]
    response = (
        "{'region': region, 'by_store': by_store.to_dict(), 'best': best, 'share': share, "
        "'line': line, 'rows': [{'store': s, 'n': n} for s, n in pairs], "
        "'counts': {k: len(v) for k, v in groups.items()}}"
    )
    keyed = data_keyed(code, response)
    assert sorted(keyed) == ["$.best", "$.by_store", "$.counts", "$.line", "$.share"]
    assert keyed["$.line"] == "keys come from data: `metric` names a key"
    sample = {
        "region": "north",
        "by_store": {"N-1": 10.5, "N-2": 7.0},
        "best": {"kettle": 4, "toaster": 2},
        "share": {"N-1": 0.6, "N-2": 0.4},
        "line": {"region": "north", "revenue": 17.5},
        "rows": [{"store": "N-1", "n": 3}],
        "counts": {"N-1": 2, "N-2": 1},
    }
    schema, warnings = infer_response(
        sample, "builtins.dict", "Kpi", None, Location(), data_keyed=keyed
    )
    assert warnings == []
    fields = {f.key: f.annotation for f in schema.classes[-1].fields}
    assert fields["by_store"] == "dict[str, float]"
    assert fields["best"] == "dict[str, int]"
    assert fields["share"] == "dict[str, float]"
    assert fields["line"] == "dict[str, float | str]"  # `revenue` is no required field
    assert fields["counts"] == "dict[str, int]"
    assert fields["rows"] == "list[KpiRowsItem]"


def test_rows_with_a_column_named_by_a_request_value_have_no_required_data_field() -> None:
    code = ["table = sales.groupby('store', as_index=False)['revenue'].sum()"]
    response = "table.rename(columns={'revenue': metric}).to_dict(orient='records')"
    keyed = data_keyed(code, response)
    assert keyed == {"$[*]": "keys come from data: `metric` names a column"}
    sample = [{"store": "N-1", "revenue": 10.5}, {"store": "N-2", "revenue": 7.0}]
    schema, _ = infer_response(sample, "builtins.list", "Kpi", None, Location(), data_keyed=keyed)
    assert schema.root == "list[dict[str, float | str]]"
