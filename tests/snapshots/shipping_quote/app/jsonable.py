"""Turn a notebook's response value into JSON-native data.

The same conversion runs inside the kernel when promoter records the notebook's answer and in
this service for every request, so both sides produce identical JSON. Fixed rules: numpy scalars
become int/float/bool, arrays (nested) lists, a DataFrame a list of row objects, a Series a list
(an object when its index is strings), NaN and infinities null, datetimes ISO 8601 strings.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import sys
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["NotSerialisableError", "to_jsonable"]

_MAX_DEPTH = 200


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
        return _mapping(value, path, depth)
    if kind is list or kind is tuple:
        return _sequence(value, path, depth)
    # Subclasses (numpy.float64, IntEnum, numpy.str_) become the plain JSON type.
    if value is None or isinstance(value, bool):
        return None if value is None else bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    converted = _numpy_or_pandas(value, path, depth)
    if converted is not _UNHANDLED:
        return converted
    return _other(value, path, depth)


_UNHANDLED = object()


def _numpy_or_pandas(value: Any, path: str, depth: int) -> Any:
    # Only look at numpy/pandas when the value comes from them: the service must not import
    # (or depend on) libraries the notebook never used.
    module = type(value).__module__.split(".", 1)[0]
    if module == "numpy" and "numpy" in sys.modules:
        import numpy as np

        if isinstance(value, np.ndarray):
            return to_jsonable(value.tolist(), path, depth + 1)
        if isinstance(value, np.generic):
            return to_jsonable(value.item(), path, depth + 1)
    if module == "pandas" and "pandas" in sys.modules:
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            rows = value.to_dict(orient="records")
            return [to_jsonable(row, f"{path}[{i}]", depth + 1) for i, row in enumerate(rows)]
        if isinstance(value, pd.Series):
            if all(isinstance(key, str) for key in value.index):
                return to_jsonable(value.to_dict(), path, depth + 1)
            return to_jsonable(value.tolist(), path, depth + 1)
        if isinstance(value, pd.Timestamp):
            return None if pd.isna(value) else value.isoformat()
        if value is pd.NaT or value is pd.NA:
            return None
    return _UNHANDLED


def _other(value: Any, path: str, depth: int) -> Any:
    if isinstance(value, Mapping):
        return _mapping(value, path, depth)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return _sequence(items, path, depth)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return to_jsonable(float(value), path, depth + 1)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, path, depth + 1)
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return to_jsonable(fields, path, depth + 1)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return to_jsonable(model_dump(mode="json"), path, depth + 1)
    raise NotSerialisableError(path, value, _why(value))


def _mapping(value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
    out = {}
    leaves_ok = depth < _MAX_DEPTH
    for key, item in value.items():
        name = key if type(key) is str else _key(key, path)
        # A plain str/int/bool/None converts to itself: skip the call and its path string.
        kind = type(item)
        if leaves_ok and (kind is str or kind is int or kind is bool or item is None):
            out[name] = item
        else:
            out[name] = to_jsonable(item, f"{path}[{name!r}]", depth + 1)
    return out


def _sequence(items: Any, path: str, depth: int) -> list[Any]:
    leaves_ok = depth < _MAX_DEPTH
    out = []
    for i, item in enumerate(items):
        kind = type(item)
        if leaves_ok and (kind is str or kind is int or kind is bool or item is None):
            out.append(item)
        else:
            out.append(to_jsonable(item, f"{path}[{i}]", depth + 1))
    return out


def _key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return "true" if key is True else "false" if key is False else "null"
    if isinstance(key, int | float):
        return str(key)
    converted = to_jsonable(key, path)
    if isinstance(converted, str | int | float):
        return str(converted)
    raise NotSerialisableError(path, key, "dictionary keys must be strings or numbers")


def _why(value: Any) -> str:
    if hasattr(value, "__next__") or hasattr(value, "send"):
        return "it is an iterator or generator; return list(...) instead"
    if callable(value):
        return "it is a function; return its result instead"
    return "return a dict, list, number, string, dataclass or pydantic model"
