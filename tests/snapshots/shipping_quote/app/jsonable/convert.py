"""The conversion: ``to_jsonable`` and ``dumps``, every value but tables, and the encoding.

Built-in types, dataclasses, pydantic models, dates, decimals and numpy scalars are converted
here; numpy arrays and pandas objects go to :mod:`.tables` (imported when such a value comes).
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
from pathlib import PurePath
from typing import Any

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
    return convert_value(value, path, depth, None)


def dumps(value: Any) -> bytes:
    """The UTF-8 JSON text of ``to_jsonable(value)``, written quickly for large tables.

    pandas and numpy values are written column by column (orjson for numbers when it is
    installed, else Python's own float spelling); everything else is converted with
    ``to_jsonable`` and encoded with orjson, or the standard library without it.
    """
    text = _fast_text(value, "response", 0)
    if text is not None:
        return _utf8(text, value)
    orjson = orjson_module()
    if orjson is None:
        return _encode(to_jsonable(value))
    try:
        data = convert_value(value, "response", 0, _fragment)
    except UnicodeEncodeError:  # a lone surrogate in a nested table: the slow, exact way
        return _encode(to_jsonable(value))
    try:
        return bytes(orjson.dumps(data))
    except TypeError:  # an integer beyond 64 bits, a lone surrogate: the slow, exact way
        return _encode(to_jsonable(value))


def convert_value(value: Any, path: str, depth: int, embed: Embed) -> Any:
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
        return convert_value(value.value, path, depth + 1, embed)
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

        from .columns import column_values
        from .tables import array_text, array_values

        if isinstance(value, np.ndarray):
            if embed is not None:
                return embed(array_text(value, path, depth))
            return array_values(value, path, depth)
        if isinstance(value, np.datetime64 | np.timedelta64):
            return column_values(np.array([value]), path, depth)[0]
        if isinstance(value, np.generic):
            item = value.item()
            if type(item) is type(value):  # longdouble: no Python type holds it
                raise NotSerialisableError(path, value, why_not(value))
            return convert_value(item, path, depth + 1, embed)
    if module == "pandas" and "pandas" in sys.modules:
        import pandas as pd

        from .columns import column_values
        from .tables import pandas_text, pandas_values

        if isinstance(value, pd.DataFrame | pd.Series | pd.Index):
            if embed is not None:
                return embed(pandas_text(value, path, depth))
            return pandas_values(value, path, depth)
        if value is pd.NaT or value is pd.NA:
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        if isinstance(value, pd.Timedelta):
            import numpy as np

            return column_values(np.array([value.to_timedelta64()]), path, depth)[0]
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
        return convert_value(fields, path, depth + 1, embed)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return convert_value(model_dump(mode="json"), path, depth + 1, embed)
    raise NotSerialisableError(path, value, why_not(value))


def _mapping(value: Mapping[Any, Any], path: str, depth: int, embed: Embed) -> dict[str, Any]:
    out = {}
    leaves_ok = depth < _MAX_DEPTH
    for key, item in value.items():
        name = key if type(key) is str else key_name(key, path)
        # A plain str/int/bool/None converts to itself: skip the call and its path string.
        kind = type(item)
        if leaves_ok and (kind is str or kind is int or kind is bool or item is None):
            out[name] = item
        else:
            out[name] = convert_value(item, f"{path}[{name!r}]", depth + 1, embed)
    if len(out) != len(value):  # 1 and "1" (or True and "true") are one JSON key
        seen: dict[str, Any] = {}
        for key in value:
            name = key if type(key) is str else key_name(key, path)
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
            out.append(convert_value(item, f"{path}[{i}]", depth + 1, embed))
    return out


def key_name(key: Any, path: str) -> str:
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


def why_not(value: Any) -> str:
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


# --- Encoding ---


def _fast_text(value: Any, path: str, depth: int) -> str | None:
    module = type(value).__module__.split(".", 1)[0]
    if module == "pandas" and "pandas" in sys.modules:
        import pandas as pd

        from .tables import pandas_text

        if isinstance(value, pd.DataFrame | pd.Series | pd.Index):
            return pandas_text(value, path, depth)
    if module == "numpy" and "numpy" in sys.modules:
        import numpy as np

        from .tables import array_text

        if isinstance(value, np.ndarray):
            return array_text(value, path, depth)
    return None


def _fragment(text: str) -> Any:
    return orjson_module().Fragment(text.encode("utf-8"))


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


def orjson_module() -> Any:
    """orjson when it is installed (the service's fast JSON writer), else None."""
    if not _ORJSON:
        try:
            import orjson as found
        except ImportError:
            found = None  # type: ignore[assignment]
        _ORJSON.append(found if hasattr(found, "Fragment") else None)
    return _ORJSON[0]
