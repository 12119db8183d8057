"""Turn a notebook's response value into JSON, losing no data.

The same conversion runs inside the kernel when promoter records the notebook's answer and in
this service for every request, so both sides produce identical JSON. ``to_jsonable`` returns
JSON-native data; ``dumps`` returns the JSON text of the same data (``json.loads(dumps(v)) ==
to_jsonable(v)``), written column by column for pandas and numpy answers so that a large table
costs about what ``DataFrame.to_json`` costs. The rules:

- numpy scalars become int/float/bool; arrays (nested) lists; float32/float16 are widened to
  float64 first (their exact value, not their shortest float32 spelling).
- NaN, infinities, ``None``, ``pd.NA`` and ``NaT`` become null.
- A DataFrame becomes a list of row objects (``orient="records"``). A meaningful index
  (anything but the default one: an unnamed RangeIndex, or an unnamed integer index equal to
  ``0..n-1``) comes first, as the fields ``reset_index()`` would make: the index name, else
  ``"index"`` (``"level_0"`` when a column is already called ``"index"``); every MultiIndex
  level, unnamed ones as ``"level_<i>"``. So ``df.describe()`` keeps count/mean/std under
  ``"index"``, and a frame indexed by ``Score`` keeps its scores.
- Column labels become field names: strings as they are, numbers as ``str()``, booleans and
  None as ``"true"``/``"false"``/``"null"``, timestamps ISO 8601. A MultiIndex (or tuple)
  column label is a path of nested objects: column ``("price", "mean")`` is
  ``row["price"]["mean"]``; empty trailing levels (which ``reset_index`` and single-level
  aggregations leave, as in ``("Score", "")``) end the path early.
- A Series with the default index becomes a list of its values; one whose index labels are
  unique strings an object ``{label: value}``; any other Series the records of
  ``series.reset_index()``, its values under its name (``"value"`` when it has none).
- Categorical values become the values of their categories; nullable integers (``Int64``)
  int or null, never float; strings (``str``, ``string``, object) strings.
- Dates and datetimes (datetime, ``pd.Timestamp``, ``datetime64``, with or without a time
  zone) become ISO 8601 strings as ``isoformat()`` writes them: no fraction when it is zero,
  else 6 digits (9 when there are nanoseconds); a UTC offset when the value has a zone.
- Timedeltas become seconds as a float: the float nearest to the true number of seconds, as
  ``datetime.timedelta.total_seconds()`` computes it (exact to the nanosecond below 104 days;
  pandas' own ``Timedelta.total_seconds()`` is an ulp off for some negative values).
- ``Decimal`` becomes its exact string (``"1.10"``), as pydantic writes it: a float would round
  it. Non-finite decimals become null.
- ``pd.Period`` and ``pd.Interval`` become their string (``"2024-01"``, ``"(0, 1]"``).
- Dataclasses and pydantic models become objects, enums their value, UUIDs and paths strings,
  sets sorted lists.

What has no faithful JSON form (complex numbers, bytes, ``np.longdouble`` (it would round),
two columns or dict keys that would become the same field, such as ``1`` and ``"1"``, an
iterator...) raises ``NotSerialisableError`` naming where it is, never a silently
different answer. numpy and pandas are imported only when the value comes from them.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import sys
import uuid
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring
from pathlib import PurePath
from typing import Any, Literal

__all__ = ["NotSerialisableError", "dumps", "to_jsonable"]

_MAX_DEPTH = 200
# Replaces a DataFrame/Series/array nested in other data with its ready-made JSON text
# (``dumps`` with orjson), or None: convert it to data like everything else.
Embed = Callable[[Any], Any] | None


class NotSerialisableError(TypeError):
    """A value (at ``path`` inside the response) has no JSON representation."""

    def __init__(self, path: str, value: object, why: str = "") -> None:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        super().__init__(
            f"the value at {path} ({kind}) cannot be turned into JSON" + (f": {why}" if why else "")
        )
        self.path = path


def to_jsonable(value: Any, path: str = "response", depth: int = 0) -> Any:
    """Convert ``value`` into JSON-native data (dict, list, str, int, float, bool, None)."""
    return _convert(value, path, depth, None)


def dumps(value: Any) -> bytes:
    """The UTF-8 JSON text of ``to_jsonable(value)``, written quickly for large tables.

    pandas and numpy values are written column by column (orjson for numbers when it is
    installed, else Python's own float spelling); everything else is converted with
    ``to_jsonable`` and encoded with orjson, or the standard library without it.
    """
    text = _fast_text(value, "response", 0)
    if text is not None:
        return _utf8(text, value)
    orjson = _orjson()
    if orjson is None:
        return _encode(to_jsonable(value))
    try:
        data = _convert(value, "response", 0, _fragment)
    except UnicodeEncodeError:  # a lone surrogate in a nested table: the slow, exact way
        return _encode(to_jsonable(value))
    try:
        return bytes(orjson.dumps(data))
    except TypeError:  # an integer beyond 64 bits, a lone surrogate: the slow, exact way
        return _encode(to_jsonable(value))


def _convert(value: Any, path: str, depth: int, embed: Embed) -> Any:
    if depth > _MAX_DEPTH:
        raise NotSerialisableError(path, value, "nested too deeply (a cycle?)")
    # Exact built-in types first: they are nearly every value of a response, and this runs
    # for each of them on every request.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return _mapping(value, path, depth, embed)
    if kind is list or kind is tuple:
        return _sequence(value, path, depth, embed)
    converted = _numpy_or_pandas(value, path, depth, embed)
    if converted is not _UNHANDLED:
        return converted
    # An enum is its value (a `class E(str, Enum)` too, whose str() is "E.A"), as in FastAPI
    # and orjson; other subclasses (numpy.str_) become the plain JSON type.
    if isinstance(value, enum.Enum):
        return _convert(value.value, path, depth + 1, embed)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return _other(value, path, depth, embed)


_UNHANDLED = object()


def _numpy_or_pandas(value: Any, path: str, depth: int, embed: Embed) -> Any:
    # Only look at numpy/pandas when the value comes from them: the service must not import
    # (or depend on) libraries the notebook never used.
    module = type(value).__module__.split(".", 1)[0]
    if module == "numpy" and "numpy" in sys.modules:
        import numpy as np

        if isinstance(value, np.ndarray):
            if embed is not None:
                return embed(_array_text(value, path, depth))
            return _array(value, path, depth)
        if isinstance(value, np.datetime64 | np.timedelta64):
            return _column_values(np.array([value]), path, depth)[0]
        if isinstance(value, np.generic):
            item = value.item()
            if type(item) is type(value):  # longdouble: no Python type holds it
                raise NotSerialisableError(path, value, _why(value))
            return _convert(item, path, depth + 1, embed)
    if module == "pandas" and "pandas" in sys.modules:
        import pandas as pd

        if isinstance(value, pd.DataFrame | pd.Series | pd.Index):
            if embed is not None:
                return embed(_pandas_text(value, path, depth))
            return _pandas(value, path, depth)
        if value is pd.NaT or value is pd.NA:
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        if isinstance(value, pd.Timedelta):
            import numpy as np

            return _column_values(np.array([value.to_timedelta64()]), path, depth)[0]
        if isinstance(value, pd.Period | pd.Interval):
            return str(value)
    return _UNHANDLED


def _other(value: Any, path: str, depth: int, embed: Embed) -> Any:
    if isinstance(value, Mapping):
        return _mapping(value, path, depth, embed)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return _sequence(items, path, depth, embed)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _convert(fields, path, depth + 1, embed)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return _convert(model_dump(mode="json"), path, depth + 1, embed)
    raise NotSerialisableError(path, value, _why(value))


def _mapping(value: Mapping[Any, Any], path: str, depth: int, embed: Embed) -> dict[str, Any]:
    out = {}
    leaves_ok = depth < _MAX_DEPTH
    for key, item in value.items():
        name = key if type(key) is str else _key(key, path)
        # A plain str/int/bool/None converts to itself: skip the call and its path string.
        kind = type(item)
        if leaves_ok and (kind is str or kind is int or kind is bool or item is None):
            out[name] = item
        else:
            out[name] = _convert(item, f"{path}[{name!r}]", depth + 1, embed)
    if len(out) != len(value):  # 1 and "1" (or True and "true") are one JSON key
        seen: dict[str, Any] = {}
        for key in value:
            name = key if type(key) is str else _key(key, path)
            if name in seen:
                why = f"the keys {seen[name]!r} and {key!r} are both {name!r} in JSON"
                raise NotSerialisableError(path, value, why)
            seen[name] = key
    return out


def _sequence(items: Any, path: str, depth: int, embed: Embed) -> list[Any]:
    leaves_ok = depth < _MAX_DEPTH
    out = []
    for i, item in enumerate(items):
        kind = type(item)
        if leaves_ok and (kind is str or kind is int or kind is bool or item is None):
            out.append(item)
        else:
            out.append(_convert(item, f"{path}[{i}]", depth + 1, embed))
    return out


def _key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, bool) or key is None:
        return "true" if key is True else "false" if key is False else "null"
    if isinstance(key, int | float):
        return str(key)
    converted = to_jsonable(key, path)
    if isinstance(converted, str | int | float):
        return str(converted)
    raise NotSerialisableError(path, key, "dictionary keys must be strings or numbers")


def _why(value: Any) -> str:
    kind = getattr(getattr(value, "dtype", None), "kind", "")
    if isinstance(value, complex) or kind == "c":
        return "JSON has no complex numbers; return .real and .imag (or abs()) instead"
    if kind == "f":
        return "JSON numbers are float64: this would round; convert it with float() if that is fine"
    if isinstance(value, bytes | bytearray | memoryview):
        return "JSON has no bytes; decode them or return base64 text instead"
    if hasattr(value, "__next__") or hasattr(value, "send"):
        return "it is an iterator or generator; return list(...) instead"
    if callable(value):
        return "it is a function; return its result instead"
    return "return a dict, list, number, string, dataclass or pydantic model"


# --- Columns: one pandas/numpy column becomes a list of values, or a list of JSON texts ---


class _Where:
    """Where a column's values are in the answer: item i is at ``{prefix}[i]{suffix}``.

    (A plain class: a dataclass would need this module in ``sys.modules``, and the kernel
    capture exec's the source into a bare namespace.)
    """

    __slots__ = ("depth", "prefix", "suffix")

    def __init__(self, prefix: str, suffix: str = "", depth: int = 0) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.depth = depth

    def at(self, i: int) -> str:
        return f"{self.prefix}[{i}]{self.suffix}"

    def column(self) -> str:
        return f"{self.prefix}[*]{self.suffix}" if self.suffix else self.prefix


class _Column:
    """One column, converted once; numbers stay a numpy array until the output is chosen.

    Either ``numbers`` (an int64/uint64/float64/bool array, with ``missing`` True where the
    value is null; NaN and infinities are null too) or ``values`` (JSON-native Python values;
    ``strings`` is "str" when each of them is a str or None, "iso" when those strings are
    also ISO 8601 text, which needs no escaping) is set.
    """

    __slots__ = ("missing", "numbers", "strings", "values")

    def __init__(
        self, numbers: Any = None, missing: Any = None, values: Any = None, strings: str = ""
    ) -> None:
        self.numbers = numbers
        self.missing = missing
        self.values: list[Any] | None = values
        self.strings = strings

    def data(self) -> list[Any]:
        """The values as JSON-native Python data."""
        if self.values is not None:
            return self.values
        out: list[Any] = self.numbers.tolist()
        for i in self._nulls():
            out[i] = None
        return out

    def texts(self) -> list[str]:
        """The JSON text of each value (the same data as :meth:`data`)."""
        if self.values is not None:
            if self.strings == "iso" and self.values and None not in self.values:
                # ISO 8601 text needs no escaping: quote every value in two C-level calls.
                return ('"' + '"\x00"'.join(self.values) + '"').split("\x00")
            if self.strings and None not in self.values:
                return list(map(encode_basestring, self.values))
            if self.strings:
                return [encode_basestring(v) if v is not None else "null" for v in self.values]
            return list(map(_value_text, self.values))
        out = _number_texts(self.numbers)
        for i in self._nulls():
            out[i] = "null"
        return out

    def bare_iso(self) -> list[str] | None:
        """ISO 8601 values (no nulls) to write between quotes as they are, else None."""
        if self.strings == "iso" and self.values and None not in self.values:
            return self.values
        return None

    def _nulls(self) -> list[int]:
        import numpy as np

        nulls = self.missing
        if self.numbers.dtype.kind == "f":
            bad = ~np.isfinite(self.numbers)
            nulls = bad if nulls is None else nulls | bad
        return [] if nulls is None else list(np.flatnonzero(nulls).tolist())


def _number_texts(numbers: Any) -> list[str]:
    if len(numbers) == 0:
        return []
    orjson = _orjson()
    if orjson is not None:
        import numpy as np

        text = orjson.dumps(np.ascontiguousarray(numbers), option=orjson.OPT_SERIALIZE_NUMPY)
        texts: list[str] = text.decode().split(",")  # "[1.5", "2.0", ..., "3.25]"
        texts[0] = texts[0][1:]
        texts[-1] = texts[-1][:-1]
        return texts
    kind = numbers.dtype.kind
    if kind == "b":
        return ["true" if v else "false" for v in numbers.tolist()]
    if kind == "f":
        return list(map(float.__repr__, numbers.tolist()))  # non-finite: nulled by the caller
    return list(map(int.__repr__, numbers.tolist()))


def _value_text(value: Any) -> str:
    """The JSON text of one JSON-native value."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return float.__repr__(value) if math.isfinite(value) else "null"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _column(values: Any, where: _Where) -> _Column:
    """Convert one pandas Series or Index (a column, an index level), by its dtype."""
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values, copy=False)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical(series, where)
    if isinstance(dtype, pd.SparseDtype):
        return _column(series.sparse.to_dense(), where)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _Column(values=_zoned_datetimes(series), strings="iso")
    if isinstance(dtype, np.dtype):
        return _numpy_column(series.to_numpy(), where)
    if isinstance(dtype, pd.StringDtype):
        strings = series.to_numpy(dtype=object, na_value=None).tolist()
        return _Column(values=strings, strings="str")
    if dtype.kind in "iufb" and hasattr(dtype, "numpy_dtype"):  # Int64, Float64, boolean...
        missing = series.isna().to_numpy()
        fill = False if dtype.kind == "b" else 0
        numbers = series.to_numpy(dtype=dtype.numpy_dtype, na_value=fill)
        return _Column(_widen(numbers), missing if missing.any() else None)
    if dtype.kind in "Mm" and hasattr(dtype, "numpy_dtype"):  # e.g. pyarrow timestamps
        return _column(series.astype(dtype.numpy_dtype), where)
    return _objects(series.to_numpy(dtype=object), where)  # Period, Interval, others


def _numpy_column(array: Any, where: _Where) -> _Column:
    """A one-dimensional numpy array."""
    import numpy as np

    kind = array.dtype.kind
    if kind in "iufb":
        return _Column(_widen(array, where.column()))
    if kind == "M":
        return _Column(values=_naive_datetimes(_seconds_or_finer(array, where)), strings="iso")
    if kind == "m":
        array = _seconds_or_finer(array, where)
        return _Column(_total_seconds(array), np.isnat(array))
    if kind == "c":
        first = array[0] if len(array) else array
        raise NotSerialisableError(where.column(), first, _why(0j))
    return _objects(array.astype(object), where)


def _widen(numbers: Any, path: str = "response") -> Any:
    """The dtypes the JSON writers know: float64, int64, uint64, bool."""
    if numbers.dtype.kind == "f" and numbers.dtype.itemsize > 8:  # longdouble
        raise NotSerialisableError(path, numbers, _why(numbers))
    wanted = {"f": "float64", "i": "int64", "u": "uint64", "b": "bool"}[numbers.dtype.kind]
    return numbers if numbers.dtype == wanted else numbers.astype(wanted)


def _objects(array: Any, where: _Where) -> _Column:
    import pandas as pd

    items = array.tolist()
    if items and pd.api.types.infer_dtype(array, skipna=False) == "string":
        return _Column(values=[str(v) for v in items], strings="str")
    out = []
    for i, item in enumerate(items):
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            out.append(item)
        else:
            out.append(_convert(item, where.at(i), where.depth + 1, None))
    return _Column(values=out)


def _categorical(series: Any, where: _Where) -> _Column:
    import numpy as np
    import pandas as pd

    codes = series.cat.codes.to_numpy()
    missing = codes < 0
    categories = series.cat.categories
    if len(categories) == 0:
        return _Column(values=[None] * len(codes))
    column = _column(pd.Series(categories.take(np.where(missing, 0, codes)), copy=False), where)
    if not missing.any():
        return column
    if column.values is None:
        both = missing if column.missing is None else missing | column.missing
        return _Column(column.numbers, both)
    values = column.values
    for i in np.flatnonzero(missing).tolist():
        values[i] = None
    return _Column(values=values, strings=column.strings)


_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _seconds_or_finer(array: Any, where: _Where) -> Any:
    """A datetime64/timedelta64 array in s, ms, us or ns (coarser units become seconds)."""
    import numpy as np

    unit, count = np.datetime_data(array.dtype)
    if unit in _PER_SECOND and count == 1:
        return array
    try:
        return array.astype("datetime64[s]" if array.dtype.kind == "M" else "timedelta64[s]")
    except TypeError as exc:
        raise NotSerialisableError(where.column(), array, f"time unit {unit!r}: {exc}") from None


def _total_seconds(array: Any) -> Any:
    """Seconds as ``timedelta.total_seconds()`` gives them: ticks / ticks per second."""
    import numpy as np

    per = _per_second(array.dtype)
    ticks = array.view("i8")
    seconds = ticks / float(per)  # one rounding while the ticks fit a float's 53 bits exactly
    big = np.abs(ticks) >= 2**53
    if big.any():
        seconds[big] = [tick / per for tick in ticks[big].tolist()]  # exact int/int division
    return seconds


def _per_second(dtype: Any) -> int:
    import numpy as np

    return _PER_SECOND[np.datetime_data(dtype)[0]]


def _naive_datetimes(array: Any) -> list[str | None]:
    """ISO 8601 as ``Timestamp.isoformat()`` writes it, for a whole datetime64 array."""
    import numpy as np

    per = _per_second(array.dtype)
    fraction = array.view("i8") % per
    nanos = fraction % (per // 10**6) != 0 if per > 10**6 else np.zeros(len(array), bool)
    micros = (fraction != 0) & ~nanos
    # The whole array in the unit most values need (one call), the others patched by index.
    main: Literal["s", "us", "ns"] = "us" if micros.all() else "ns" if nanos.all() else "s"
    strings: list[str | None] = np.datetime_as_string(array, unit=main).tolist()
    others: tuple[tuple[Literal["us", "ns"], Any], ...] = (("us", micros), ("ns", nanos))
    for unit, chosen in others:
        if unit != main and chosen.any():
            where = np.flatnonzero(chosen)
            texts = np.datetime_as_string(array[where], unit=unit).tolist()
            for i, text in zip(where.tolist(), texts, strict=True):
                strings[i] = text
    for i in np.flatnonzero(np.isnat(array)).tolist():
        strings[i] = None
    return strings


def _zoned_datetimes(series: Any) -> list[str | None]:
    """ISO 8601 with the UTC offset of each value, as ``Timestamp.isoformat()`` writes it."""
    import numpy as np

    wall = series.dt.tz_localize(None).to_numpy()
    utc = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    strings = _naive_datetimes(wall)
    offsets = (wall.view("i8") - utc.view("i8")) // _per_second(wall.dtype)
    names = {offset: _offset_text(offset) for offset in np.unique(offsets).tolist()}
    return [
        None if text is None else text + names[offset]
        for text, offset in zip(strings, offsets.tolist(), strict=True)
    ]


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _column_values(array: Any, path: str, depth: int) -> list[Any]:
    return _numpy_column(array, _Where(path, "", depth)).data()


# --- numpy arrays ---


def _array(array: Any, path: str, depth: int) -> Any:
    if array.ndim == 0:
        return _convert(array[()], path, depth + 1, None)
    if array.ndim == 1:
        return _numpy_column(array, _Where(path, "", depth)).data()
    if array.dtype.kind in "iufb":
        widened = _widen(array, path)
        if array.dtype.kind != "f":
            return widened.tolist()
    return [_array(row, f"{path}[{i}]", depth + 1) for i, row in enumerate(array)]


def _array_text(array: Any, path: str, depth: int) -> str:
    if array.ndim == 0:
        return _value_text(_convert(array[()], path, depth + 1, None))
    if array.ndim == 1:
        return "[" + ",".join(_numpy_column(array, _Where(path, "", depth)).texts()) + "]"
    orjson = _orjson()
    if orjson is not None and array.dtype.kind in "iufb":
        import numpy as np

        widened = np.ascontiguousarray(_widen(array, path))
        return bytes(orjson.dumps(widened, option=orjson.OPT_SERIALIZE_NUMPY)).decode()
    rows = (_array_text(row, f"{path}[{i}]", depth + 1) for i, row in enumerate(array))
    return "[" + ",".join(rows) + "]"


# --- DataFrames, Series, Index ---

# A frame's fields: name -> a column, or name -> the nested fields of a MultiIndex column.
Fields = dict[str, "_Column | Fields"]


def _pandas(value: Any, path: str, depth: int) -> Any:
    import pandas as pd

    if isinstance(value, pd.Series):
        shape, content = _series_shape(value, path, depth)
        if shape == "list":
            return content.data()
        if shape == "object":
            return dict(zip(map(str, value.index.tolist()), content.data(), strict=True))
        return _records(content, len(value))
    if isinstance(value, pd.MultiIndex):
        return _pandas(pd.DataFrame(index=value), path, depth)
    if isinstance(value, pd.Index):
        return _column(value, _Where(path, "", depth)).data()
    return _records(_frame_fields(value, path, depth), len(value))


def _pandas_text(value: Any, path: str, depth: int) -> str:
    import pandas as pd

    if isinstance(value, pd.Series):
        shape, content = _series_shape(value, path, depth)
        if shape == "list":
            return "[" + ",".join(content.texts()) + "]"
        if shape == "object":
            keys = [encode_basestring(str(label)) + ":" for label in value.index.tolist()]
            pairs = [k + t for k, t in zip(keys, content.texts(), strict=True)]
            return "{" + ",".join(pairs) + "}"
        return _records_text(content, len(value))
    if isinstance(value, pd.MultiIndex):
        return _pandas_text(pd.DataFrame(index=value), path, depth)
    if isinstance(value, pd.Index):
        return "[" + ",".join(_column(value, _Where(path, "", depth)).texts()) + "]"
    return _records_text(_frame_fields(value, path, depth), len(value))


def _series_shape(series: Any, path: str, depth: int) -> tuple[str, Any]:
    """``list``, ``object`` (a column) or ``records`` (fields), by the Series' index."""
    import pandas as pd

    index = series.index
    if _default_index(index):
        return "list", _column(series, _Where(path, "", depth))
    if (
        not isinstance(index, pd.MultiIndex)
        and pd.api.types.infer_dtype(index, skipna=False) == "string"
        and index.is_unique
    ):
        return "object", _column(series, _Where(path, "", depth))
    frame = series.to_frame("value" if series.name is None else series.name)
    return "records", _frame_fields(frame, path, depth)


def _default_index(index: Any) -> bool:
    """An unnamed RangeIndex from 0 by 1, or an unnamed integer index equal to one."""
    import pandas as pd

    if index.name is not None or isinstance(index, pd.MultiIndex):
        return False
    if isinstance(index, pd.RangeIndex):
        return bool(index.start == 0 and index.step == 1)
    return index.dtype.kind in "iu" and bool(index.equals(pd.RangeIndex(len(index))))


def _index_names(index: Any, columns: list[Any]) -> list[Any]:
    """The names ``reset_index()`` gives the index levels."""
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        return [f"level_{i}" if n is None else n for i, n in enumerate(index.names)]
    if index.name is not None:
        return [index.name]
    return ["level_0" if "index" in columns else "index"]


def _frame_fields(frame: Any, path: str, depth: int) -> Fields:
    import pandas as pd

    columns = frame.columns.tolist()
    labels: list[Any] = []
    data: list[Any] = []
    index = frame.index
    if not _default_index(index):
        top = [c[0] if isinstance(c, tuple) else c for c in columns]
        for level, name in enumerate(_index_names(index, top)):
            labels.append(name)
            data.append(
                index.get_level_values(level) if isinstance(index, pd.MultiIndex) else index
            )
    if not frame.columns.is_unique:
        twice = frame.columns[frame.columns.duplicated()][0]
        raise NotSerialisableError(
            path, frame, f"two columns are both named {twice!r}, so become one field; rename one"
        )
    for label, column in frame.items():  # much cheaper per column than .iloc[:, j]
        labels.append(label)
        data.append(column)
    fields: Fields = {}
    for label, values in zip(labels, data, strict=True):
        parts = list(label) if isinstance(label, tuple) else [label]
        while len(parts) > 1 and parts[-1] == "":
            parts.pop()
        names = [_key(part, path) for part in parts]
        where = _Where(path, "".join(f"[{name!r}]" for name in names), depth + 1)
        _place(fields, names, _column(values, where), frame, path)
    return fields


def _place(fields: Fields, names: list[str], column: _Column, frame: Any, path: str) -> None:
    node = fields
    for i, name in enumerate(names):
        last = i == len(names) - 1
        existing = node.get(name)
        if existing is None:
            if last:
                node[name] = column
                return
            existing = node[name] = {}
        if last or not isinstance(existing, dict):
            field = ".".join(names[: i + 1])
            raise NotSerialisableError(
                path,
                frame,
                f"two columns (or an index level and a column) become the field {field!r}; "
                "rename one",
            )
        node = existing


def _records(fields: Fields, rows: int) -> list[dict[str, Any]]:
    names = list(fields)
    lists = [
        _records(node, rows) if isinstance(node, dict) else node.data() for node in fields.values()
    ]
    if not names:
        return [{} for _ in range(rows)]
    return [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]


def _records_text(fields: Fields, rows: int) -> str:
    """The JSON text of the rows, all laid out in one list of parts joined once.

    ``parts[j::stride]`` is one field of every row, so the per-row work is slice assignment
    in C rather than a Python loop.
    """
    if rows == 0:
        return "[]"
    if not fields:
        return "[" + ",".join(["{}"] * rows) + "]"
    stride = 2 * len(fields) + 1
    parts: list[str] = [""] * (rows * stride)
    quote = ""  # '"' when the previous field's values are ISO text laid out without quotes
    for j, (name, node) in enumerate(fields.items()):
        raw = None if isinstance(node, dict) else node.bare_iso()
        # ISO text needs no escaping: its quotes go into the parts around it, not each value.
        opening = '"' if raw is not None else ""
        key = quote + ("{" if j == 0 else ",") + encode_basestring(name) + ":" + opening
        parts[2 * j :: stride] = [key] * rows
        if raw is not None:
            parts[2 * j + 1 :: stride] = raw
        elif isinstance(node, dict):
            parts[2 * j + 1 :: stride] = _object_texts(node, rows)
        else:
            parts[2 * j + 1 :: stride] = node.texts()
        quote = opening
    parts[stride - 1 :: stride] = [quote + "},"] * rows
    parts[0] = "[" + parts[0]
    parts[-1] = quote + "}]"
    return "".join(parts)


def _object_texts(fields: Fields, rows: int) -> list[str]:
    """One JSON object text per row (a MultiIndex column group, nested in the row)."""
    if not fields:
        return ["{}"] * rows
    lists = [
        _object_texts(node, rows) if isinstance(node, dict) else node.texts()
        for node in fields.values()
    ]
    keys = [encode_basestring(name).replace("%", "%%") + ":%s" for name in fields]
    template = "{" + ",".join(keys) + "}"
    return [template % row for row in zip(*lists, strict=True)]


# --- Encoding ---


def _fast_text(value: Any, path: str, depth: int) -> str | None:
    module = type(value).__module__.split(".", 1)[0]
    if module == "pandas" and "pandas" in sys.modules:
        import pandas as pd

        if isinstance(value, pd.DataFrame | pd.Series | pd.Index):
            return _pandas_text(value, path, depth)
    if module == "numpy" and "numpy" in sys.modules:
        import numpy as np

        if isinstance(value, np.ndarray):
            return _array_text(value, path, depth)
    return None


def _fragment(text: str) -> Any:
    return _orjson().Fragment(text.encode("utf-8"))


def _utf8(text: str, value: Any) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only an ASCII escape is valid JSON
        return _encode(to_jsonable(value))


def _encode(data: Any) -> bytes:
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, separators=(",", ":")).encode("ascii")


_ORJSON: list[Any] = []


def _orjson() -> Any:
    """orjson when it is installed (the service's fast JSON writer), else None."""
    if not _ORJSON:
        try:
            import orjson as found
        except ImportError:
            found = None  # type: ignore[assignment]
        _ORJSON.append(found if hasattr(found, "Fragment") else None)
    return _ORJSON[0]
