"""The shared JSON converter (templates/service/app/jsonable/): lossless and fast.

Every fixture is compared with the object's own ``to_dict``/``reset_index().to_dict(orient=
"records")`` forms, put through :func:`plain` (a small, obviously correct reference of the
documented scalar rules), and ``dumps`` must give exactly the data of ``to_jsonable``.
"""

from __future__ import annotations

import datetime
import enum
import importlib.util
import json
import math
import subprocess
import sys
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from promoter.building.resources import jsonable_loader_code, jsonable_sources, template_dir
from tests.helpers import run_cli, write_notebook

SOURCE = template_dir() / "service" / "app" / "jsonable"
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _load() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "promoter_jsonable_under_test",
        SOURCE / "__init__.py",
        submodule_search_locations=[str(SOURCE)],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its modules import one another relatively
    spec.loader.exec_module(module)
    return module


J = _load()


# --- the reference: pandas' own forms, with the documented scalar rules ---


def plain(value: Any) -> Any:
    """One cell of ``to_dict`` output, by the documented rules (not by jsonable's code)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp | datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        # the exact quotient, rounded once (pandas' total_seconds() is an ulp off for some
        # negative values: -3 ms gives -0.0030000000000000027)
        return value.value / 10**9
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, pd.Period | pd.Interval):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def nest(row: dict[Any, Any]) -> dict[str, Any]:
    """A record whose keys may be column tuples, as nested objects (trailing "" levels cut)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        parts = list(key) if isinstance(key, tuple) else [key]
        while len(parts) > 1 and parts[-1] == "":
            parts.pop()
        node = out
        for part in parts[:-1]:
            node = node.setdefault(str(part), {})
        node[str(parts[-1])] = plain(value)
    return out


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """What the rules say a frame becomes: reset_index() (unless default), then records."""
    default = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    full = frame if default else frame.reset_index()
    return [nest(row) for row in full.to_dict(orient="records")]


def same_both_ways(value: Any) -> Any:
    """``to_jsonable`` and ``dumps`` agree (also without orjson); returns the answer."""
    answer = J.to_jsonable(value)
    assert json.loads(J.dumps(value)) == answer
    assert json.loads(json.dumps(answer)) == answer  # JSON-native, no NaN
    return answer


@pytest.fixture
def without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service without orjson installed: dumps must still give the same data."""
    monkeypatch.setattr(J.convert, "_ORJSON", [None])


# --- fixtures: the shapes notebooks really return ---


def sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": ["north", "north", "south", "south", "east", "east"],
            "product": ["apple", "pear", "apple", "pear", "apple", "pear"],
            "sales": [10.5, 3.25, 7.0, np.nan, 1.125, 2.0],
            "units": [3, 1, 2, 0, 1, 1],
        }
    )


def scores() -> pd.DataFrame:
    frame = pd.DataFrame({"Score": [0.91, 0.87, 0.5], "model": ["svm", "tree", "dummy"]})
    return frame.set_index("Score")


FIXTURES: dict[str, Any] = {
    "float index": scores,
    "describe": lambda: sales().describe(),
    "describe all": lambda: sales().describe(include="all"),
    "multiindex groupby": lambda: (
        sales().groupby(["region", "product"]).agg(total=("sales", "sum"), n=("units", "count"))
    ),
    "pivot, MultiIndex columns": lambda: pd.pivot_table(
        sales(), values=["sales", "units"], index="region", columns="product", aggfunc="sum"
    ),
    "groupby agg, MultiIndex columns": lambda: (
        sales().groupby("region").agg({"sales": ["mean", "max"], "units": ["sum"]})
    ),
    "datetimes": lambda: pd.DataFrame(
        {
            "when": pd.to_datetime(
                ["2024-01-01", "2024-01-01 12:30:00.5", None, "2024-03-01 00:00:00.000000001"],
                format="ISO8601",
            ),
            "zoned": pd.to_datetime(
                ["2024-01-01 09:00", "2024-07-01 09:00", None, "2024-12-31 23:59:59.25"],
                format="ISO8601",
            ).tz_localize("Europe/Paris"),
        }
    ),
    "DatetimeIndex": lambda: pd.DataFrame(
        {"visits": [5, 7, 11]}, index=pd.date_range("2024-01-01", periods=3, freq="D")
    ),
    "datetime columns side by side, last": lambda: pd.DataFrame(
        {
            "n": [1, 2],
            "start": pd.date_range("2024-01-01", periods=2),
            "end": pd.date_range("2024-02-01 00:00:00.25", periods=2),
        },
        index=pd.date_range("2023-12-01", periods=2, name="day"),
    ),
    "categorical": lambda: pd.DataFrame(
        {
            "size": pd.Categorical(["S", "L", None, "M"], categories=["S", "M", "L"]),
            "code": pd.Categorical([3, 1, 3, None]),
        }
    ),
    "Int64 with NA": lambda: pd.DataFrame(
        {
            "count": pd.array([1, None, 3, 2**62], dtype="Int64"),
            "share": pd.array([0.5, None, np.nan, 1.0], dtype="Float64"),
            "ok": pd.array([True, None, False, True], dtype="boolean"),
            "name": pd.array(["a", None, "c", "d"], dtype="string"),
        }
    ),
    "timedelta": lambda: pd.DataFrame(
        {"took": pd.to_timedelta(["1s", None, "1 day 00:00:00.000000001", "-3ms"])}
    ),
    "Decimal": lambda: pd.DataFrame(
        {"price": [Decimal("1.10"), Decimal("0.1000000000000000055511151231257827"), None]}
    ),
    "period and interval": lambda: pd.DataFrame(
        {
            "month": pd.period_range("2024-01", periods=2, freq="M"),
            "bucket": pd.interval_range(0, 2),
        }
    ),
    "sorted (integer index)": lambda: sales().sort_values("sales"),
    "named index": lambda: sales().set_index("product").rename_axis("item"),
    "index without columns": lambda: pd.DataFrame(index=pd.Index(["a", "b"], name="key")),
    "integer column labels": lambda: pd.DataFrame([[1, 2.5], [3, 4.5]]),
    "transposed describe": lambda: sales().describe().T,
    "empty": lambda: sales().iloc[0:0],
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_frames_keep_every_label_and_value(name: str) -> None:
    frame = FIXTURES[name]()
    assert same_both_ways(frame) == records(frame)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_frames_without_orjson(name: str, without_orjson: None) -> None:
    frame = FIXTURES[name]()
    assert same_both_ways(frame) == records(frame)


def test_float_index_keeps_the_scores() -> None:
    answer = J.to_jsonable(scores())
    assert answer == [
        {"Score": 0.91, "model": "svm"},
        {"Score": 0.87, "model": "tree"},
        {"Score": 0.5, "model": "dummy"},
    ]


def test_describe_keeps_its_row_labels_in_order() -> None:
    answer = J.to_jsonable(sales().describe())
    labels = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]
    assert [row["index"] for row in answer] == labels
    assert list(answer[0]) == ["index", "sales", "units"]
    assert answer[0]["sales"] == 5.0


def test_multiindex_groupby_keeps_every_level_first() -> None:
    answer = J.to_jsonable(FIXTURES["multiindex groupby"]())
    assert list(answer[0]) == ["region", "product", "total", "n"]
    assert {(r["region"], r["product"]) for r in answer} == {
        (region, product) for region in ("north", "south", "east") for product in ("apple", "pear")
    }


def test_multiindex_columns_become_nested_objects() -> None:
    pivot = FIXTURES["pivot, MultiIndex columns"]()
    answer = J.to_jsonable(pivot)
    east = next(row for row in answer if row["region"] == "east")
    assert east == {
        "region": "east",
        "sales": {"apple": 1.125, "pear": 2.0},
        "units": {"apple": 1, "pear": 1},
    }
    # every (value, product) cell of the pivot is somewhere in the answer
    for (value, product), column in pivot.items():
        got = [row[value][product] for row in answer]
        assert got == [plain(v) for v in column.tolist()]


def test_dtypes_have_their_documented_forms() -> None:
    dates = J.to_jsonable(FIXTURES["datetimes"]())
    assert [row["when"] for row in dates] == [
        "2024-01-01T00:00:00",
        "2024-01-01T12:30:00.500000",
        None,
        "2024-03-01T00:00:00.000000001",
    ]
    assert dates[1]["zoned"] == "2024-07-01T09:00:00+02:00"
    assert dates[3]["zoned"] == "2024-12-31T23:59:59.250000+01:00"
    ints = J.to_jsonable(FIXTURES["Int64 with NA"]())
    assert [row["count"] for row in ints] == [1, None, 3, 2**62]
    assert all(type(row["count"]) is int for row in ints if row["count"] is not None)
    assert [row["share"] for row in ints] == [0.5, None, None, 1.0]
    took = J.to_jsonable(FIXTURES["timedelta"]())
    assert [row["took"] for row in took] == [1.0, None, 86400.000000001, -0.003]
    assert J.to_jsonable(FIXTURES["Decimal"]())[1] == {
        "price": "0.1000000000000000055511151231257827"
    }
    sizes = J.to_jsonable(FIXTURES["categorical"]())
    assert [row["size"] for row in sizes] == ["S", "L", None, "M"]
    assert [row["code"] for row in sizes] == [3, 1, 3, None]
    index = J.to_jsonable(FIXTURES["DatetimeIndex"]())
    assert index[0] == {"index": "2024-01-01T00:00:00", "visits": 5}


def test_nested_frames_in_dicts() -> None:
    frame = sales()
    value = {
        "table": frame,
        "summary": {"describe": frame.describe(), "by_region": frame.groupby("region").sum()},
        "per_product": [frame.groupby("product")["sales"].mean()],
    }
    answer = same_both_ways(value)
    assert answer["table"] == records(frame)
    assert answer["summary"]["describe"] == records(frame.describe())
    assert answer["summary"]["by_region"] == records(frame.groupby("region").sum())
    means = frame.groupby("product")["sales"].mean()
    assert answer["per_product"] == [{k: plain(v) for k, v in means.to_dict().items()}]


def test_series_shapes() -> None:
    frame = sales()
    # the default index: a list
    assert same_both_ways(frame["units"]) == [3, 1, 2, 0, 1, 1]
    # unique string labels: an object
    means = frame.groupby("product")["units"].sum()
    assert same_both_ways(means) == {k: plain(v) for k, v in means.to_dict().items()}
    # anything else: the records of reset_index(), values under the name (or "value")
    counts = frame["units"].value_counts()
    assert same_both_ways(counts) == records(counts.to_frame())
    assert list(J.to_jsonable(counts)[0]) == ["units", "count"]
    series = pd.Series([1.5, np.nan], index=pd.date_range("2024-01-01", periods=2))
    assert same_both_ways(series) == [
        {"index": "2024-01-01T00:00:00", "value": 1.5},
        {"index": "2024-01-02T00:00:00", "value": None},
    ]
    pairs = frame.groupby(["region", "product"])["units"].sum()
    assert same_both_ways(pairs) == records(pairs.to_frame())


def test_numpy_values() -> None:
    assert same_both_ways(np.array([[1.0, np.nan], [np.inf, -0.5]])) == [[1.0, None], [None, -0.5]]
    assert same_both_ways(np.array([1, 2], dtype=np.int8)) == [1, 2]
    assert same_both_ways(np.float32(0.1)) == float(np.float32(0.1))
    assert same_both_ways(np.array([0.1], dtype=np.float32)) == [float(np.float32(0.1))]
    stamps = np.array(["2024-01-01T00:00:00.000000001", "NaT"], dtype="datetime64[ns]")
    assert same_both_ways(stamps) == ["2024-01-01T00:00:00.000000001", None]
    assert same_both_ways(np.datetime64("2024-01-01")) == "2024-01-01T00:00:00"
    assert same_both_ways(np.timedelta64(1500, "ms")) == 1.5
    assert same_both_ways(pd.Timestamp("2024-01-01", tz="UTC")) == "2024-01-01T00:00:00+00:00"
    assert same_both_ways(pd.NA) is None
    assert same_both_ways(Decimal("2.50")) == "2.50"


def test_an_enum_is_its_value() -> None:
    """As in FastAPI and orjson: a ``class E(str, Enum)`` member is "red", not "Colour.RED"."""

    class Colour(str, enum.Enum):  # noqa: UP042 (the mixin is the case under test)
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    class Pair(enum.Enum):
        P = (1, np.float64(2.5))

    value = {"c": Colour.RED, "l": Level.HIGH, "p": Pair.P}
    assert same_both_ways(value) == {"c": "red", "l": 3, "p": [1, 2.5]}


@pytest.mark.parametrize(
    ("value", "where", "why"),
    [
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "response", "both named 'a'"),
        (pd.DataFrame([[1, 2]], columns=[1, "1"]), "response", "field '1'"),
        (pd.DataFrame({"a": [1]}, index=pd.Index([7], name="a")), "response", "field 'a'"),
        (
            pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", ""), ("a", "x")])),
            "response",
            "field 'a'",
        ),
        ({"t": pd.DataFrame({"z": [1 + 2j]})}, "response['t'][*]['z']", "complex"),
        ({"t": pd.DataFrame({"b": [b"raw"]})}, "response['t'][0]['b']", "bytes"),
        (pd.Series([1j]), "response", "complex"),
        ({"d": {1: "a", "1": "b"}}, "response['d']", "both '1'"),
        (np.array([[1.5]], dtype=np.longdouble), "response", "would round"),
        ({"x": pd.Series([np.longdouble(2)], dtype=np.longdouble)}, "response['x']", "round"),
        (np.longdouble(2), "response", "would round"),
        ({"it": iter([1])}, "response['it']", "iterator"),
    ],
)
def test_what_cannot_be_represented_is_a_clear_error(value: Any, where: str, why: str) -> None:
    for convert in (J.to_jsonable, J.dumps):
        with pytest.raises(J.NotSerialisableError) as caught:
            convert(value)
        assert caught.value.path == where
        assert why in str(caught.value)


# --- properties ---

FLOATS = st.floats(allow_nan=True, allow_infinity=True)
ZONES = st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata", "America/St_Johns"])
TICKS = st.integers(min_value=-(2**62), max_value=2**62)


@PROPERTY
@given(st.lists(FLOATS, max_size=30))
@example([0.1 + 0.2, 5e-324, 1e16, -0.0, float("nan"), float("inf"), 1 / 3])
def test_floats_round_trip_exactly(values: list[float]) -> None:
    expected = [v if math.isfinite(v) else None for v in values]
    assert same_both_ways(np.array(values, dtype=float)) == expected
    assert same_both_ways(pd.Series(values, dtype=float)) == expected


@PROPERTY
@given(st.lists(TICKS | st.none(), max_size=20), st.sampled_from(["s", "ms", "us", "ns"]))
@example([0, 500_000, 1, -1, None], "ns")
def test_datetimes_as_isoformat_writes_them(ticks: list[int | None], unit: str) -> None:
    limit = 2**62 // {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    ticks = [None if t is None else t % (2 * limit) - limit for t in ticks]  # pandas' range
    values = pd.Series(
        np.array([np.datetime64("NaT") if t is None else t for t in ticks], f"datetime64[{unit}]")
    )
    expected = [None if pd.isna(v) else v.isoformat() for v in values]
    assert same_both_ways(values) == expected
    assert same_both_ways(values.to_numpy()) == expected


@PROPERTY
@given(st.lists(st.integers(0, 2**61) | st.none(), max_size=20), ZONES)
def test_zoned_datetimes_as_isoformat_writes_them(ticks: list[int | None], zone: str) -> None:
    values = pd.Series(pd.to_datetime(ticks, unit="ns", utc=True)).dt.tz_convert(zone)
    expected = [None if pd.isna(v) else v.isoformat() for v in values]
    assert same_both_ways(values) == expected
    assert [same_both_ways(v) for v in values] == expected


@PROPERTY
@given(st.lists(TICKS | st.none(), max_size=20))
def test_timedeltas_as_total_seconds(ticks: list[int | None]) -> None:
    values = pd.Series(pd.to_timedelta(ticks, unit="ns"))
    expected = [None if t is None else t / 10**9 for t in ticks]
    assert same_both_ways(values) == expected


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
FRAMES = hpd.data_frames(
    columns=[
        hpd.column("f", dtype=float),
        hpd.column("i", dtype=np.int64),
        hpd.column("b", dtype=bool),
        hpd.column("s", elements=TEXT | st.none(), dtype=object),
        hpd.column("o", elements=st.integers() | FLOATS | TEXT | st.none(), dtype=object),
        hpd.column(
            "t",
            elements=st.datetimes(datetime.datetime(1700, 1, 1), datetime.datetime(2250, 1, 1)),
            dtype="datetime64[ns]",
        ),
    ],
    index=hpd.range_indexes()
    | hpd.indexes(elements=FLOATS, unique=False)
    | hpd.indexes(elements=TEXT, unique=True),
)


@PROPERTY
@given(FRAMES)
def test_frames_property(frame: pd.DataFrame) -> None:
    answer = same_both_ways(frame)
    assert answer == records(frame)
    series = frame["f"]
    expected = (
        {k: plain(v) for k, v in series.items()}
        if len(series) and all(isinstance(k, str) for k in series.index)
        else None
    )
    if expected is not None:
        assert same_both_ways(series) == expected
    else:
        same_both_ways(series)


@PROPERTY
@given(FRAMES)
def test_frames_property_without_orjson(frame: pd.DataFrame) -> None:
    J.convert._ORJSON[:] = [None]
    try:
        assert same_both_ways(frame) == records(frame)
    finally:
        J.convert._ORJSON.clear()


def test_lone_surrogates_become_escapes() -> None:
    # object dtype: pandas' own string dtype, backed by pyarrow when it is installed, cannot
    # hold a lone surrogate at all (pyarrow refuses to encode it).
    frame = pd.DataFrame({"text": pd.Series(["ok", "\ud800"], dtype=object)})
    assert json.loads(J.dumps(frame)) == [{"text": "ok"}, {"text": "\ud800"}]
    assert json.loads(J.dumps({"text": "\ud800", "n": 2**70})) == {"text": "\ud800", "n": 2**70}
    nested = {"table": frame, "big": pd.Series([2**70], dtype=object)}
    assert json.loads(J.dumps(nested)) == J.to_jsonable(nested)


# --- where it runs ---


def test_the_kernel_runs_the_same_converter() -> None:
    """promoter loads these very modules in the kernel, from their source, to record the answer."""
    namespace: dict[str, Any] = {}
    exec(jsonable_loader_code(), namespace)
    hooks = list(sys.meta_path)
    kernel_side = namespace["load_package"]("_jsonable_in_kernel", jsonable_sources())
    assert sys.meta_path == hooks  # the finder is gone again; the modules stay loaded
    frame = FIXTURES["pivot, MultiIndex columns"]()
    assert kernel_side.to_jsonable(frame) == J.to_jsonable(frame)
    assert kernel_side.dumps(frame) == J.dumps(frame)
    shipped = {path.stem: path.read_text(encoding="utf-8") for path in SOURCE.glob("*.py")}
    assert jsonable_sources() == shipped


def test_numpy_and_pandas_are_imported_only_when_the_value_comes_from_them() -> None:
    script = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('j', {str(SOURCE / '__init__.py')!r},\n"
        f"    submodule_search_locations=[{str(SOURCE)!r}])\n"
        "j = importlib.util.module_from_spec(spec); sys.modules['j'] = j\n"
        "spec.loader.exec_module(j)\n"
        "import datetime, decimal\n"
        "value = {'a': [1, 2.5, None, float('nan')], 'when': datetime.date(2024, 1, 2),\n"
        "         'price': decimal.Decimal('1.10')}\n"
        "assert json.loads(j.dumps(value)) == j.to_jsonable(value)\n"
        "print(sorted(m for m in ('numpy', 'pandas') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_generated_service_answers_describe_with_its_labels(tmp_path: Path, serve_folder) -> None:
    notebook = write_notebook(
        tmp_path / "summary.ipynb",
        ("code", "import pandas as pd", ["setup"]),
        ("code", "scale = 2.0", ["parameters"]),
        (
            "code",
            "frame = pd.DataFrame({'height': [1.0, 2.0, 4.0], 'weight': [3, 5, 9]}) * scale\n"
            "frame.describe()",
            ["response"],
        ),
    )
    service = tmp_path / "service"
    result = run_cli("convert", notebook, "-o", service)
    assert result.returncode == 0, result.output
    server = serve_folder(service)
    for scale in (2.0, 0.5):
        response = httpx.post(f"{server.url}/summary", json={"scale": scale}, timeout=60)
        assert response.status_code == 200, response.text
        frame = pd.DataFrame({"height": [1.0, 2.0, 4.0], "weight": [3, 5, 9]}) * scale
        assert response.json() == records(frame.describe())
        labels = [row["index"] for row in response.json()]
        assert labels == ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]


@pytest.mark.slow
def test_convert_fails_clearly_on_an_answer_without_a_faithful_json_form(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "clash.ipynb",
        ("code", "import pandas as pd", ["setup"]),
        ("code", "rows = 2", ["parameters"]),
        ("code", "pd.DataFrame([[1, 2]] * rows, columns=['a', 'a'])", ["response"]),
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "service")
    assert result.returncode == 1
    assert "cell 3" in result.output
    assert "two columns are both named 'a'" in result.output
    assert "Traceback" not in result.output
