"""Columns: one pandas/numpy column becomes a list of values, or a list of JSON texts."""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring
from typing import Any, Literal

from .convert import NotSerialisableError, convert_value, orjson_module, why_not


class Where:
    """Where a column's values are in the answer: item i is at ``{prefix}[i]{suffix}``."""

    __slots__ = ("depth", "prefix", "suffix")

    def __init__(self, prefix: str, suffix: str = "", depth: int = 0) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.depth = depth

    def at(self, i: int) -> str:
        return f"{self.prefix}[{i}]{self.suffix}"

    def column(self) -> str:
        return f"{self.prefix}[*]{self.suffix}" if self.suffix else self.prefix


class Column:
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
            return list(map(value_text, self.values))
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
    orjson = orjson_module()
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


def value_text(value: Any) -> str:
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


def make_column(values: Any, where: Where) -> Column:
    """Convert one pandas Series or Index (a column, an index level), by its dtype."""
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values, copy=False)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical(series, where)
    if isinstance(dtype, pd.SparseDtype):
        return make_column(series.sparse.to_dense(), where)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return Column(values=_zoned_datetimes(series), strings="iso")
    if isinstance(dtype, np.dtype):
        return numpy_column(series.to_numpy(), where)
    if isinstance(dtype, pd.StringDtype):
        strings = series.to_numpy(dtype=object, na_value=None).tolist()
        return Column(values=strings, strings="str")
    if dtype.kind in "iufb" and hasattr(dtype, "numpy_dtype"):  # Int64, Float64, boolean...
        missing = series.isna().to_numpy()
        fill = False if dtype.kind == "b" else 0
        numbers = series.to_numpy(dtype=dtype.numpy_dtype, na_value=fill)
        return Column(widen(numbers), missing if missing.any() else None)
    if dtype.kind in "Mm" and hasattr(dtype, "numpy_dtype"):  # e.g. pyarrow timestamps
        return make_column(series.astype(dtype.numpy_dtype), where)
    return _objects(series.to_numpy(dtype=object), where)  # Period, Interval, others


def numpy_column(array: Any, where: Where) -> Column:
    """A one-dimensional numpy array."""
    import numpy as np

    kind = array.dtype.kind
    if kind in "iufb":
        return Column(widen(array, where.column()))
    if kind == "M":
        return Column(values=_naive_datetimes(_seconds_or_finer(array, where)), strings="iso")
    if kind == "m":
        array = _seconds_or_finer(array, where)
        return Column(_total_seconds(array), np.isnat(array))
    if kind == "c":
        first = array[0] if len(array) else array
        raise NotSerialisableError(where.column(), first, why_not(0j))
    return _objects(array.astype(object), where)


def widen(numbers: Any, path: str = "response") -> Any:
    """The dtypes the JSON writers know: float64, int64, uint64, bool."""
    if numbers.dtype.kind == "f" and numbers.dtype.itemsize > 8:  # longdouble
        raise NotSerialisableError(path, numbers, why_not(numbers))
    wanted = {"f": "float64", "i": "int64", "u": "uint64", "b": "bool"}[numbers.dtype.kind]
    return numbers if numbers.dtype == wanted else numbers.astype(wanted)


def _objects(array: Any, where: Where) -> Column:
    import pandas as pd

    items = array.tolist()
    if items and pd.api.types.infer_dtype(array, skipna=False) == "string":
        return Column(values=[str(v) for v in items], strings="str")
    out = []
    for i, item in enumerate(items):
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            out.append(item)
        else:
            out.append(convert_value(item, where.at(i), where.depth + 1, None))
    return Column(values=out)


def _categorical(series: Any, where: Where) -> Column:
    import numpy as np
    import pandas as pd

    codes = series.cat.codes.to_numpy()
    missing = codes < 0
    categories = series.cat.categories
    if len(categories) == 0:
        return Column(values=[None] * len(codes))
    column = make_column(pd.Series(categories.take(np.where(missing, 0, codes)), copy=False), where)
    if not missing.any():
        return column
    if column.values is None:
        both = missing if column.missing is None else missing | column.missing
        return Column(column.numbers, both)
    values = column.values
    for i in np.flatnonzero(missing).tolist():
        values[i] = None
    return Column(values=values, strings=column.strings)


_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _seconds_or_finer(array: Any, where: Where) -> Any:
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


def column_values(array: Any, path: str, depth: int) -> list[Any]:
    return numpy_column(array, Where(path, "", depth)).data()
