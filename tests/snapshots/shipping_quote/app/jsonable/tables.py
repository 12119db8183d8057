"""Tables: numpy arrays, and pandas DataFrames, Series and Index, as data or as JSON text."""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

from .columns import Column, Where, make_column, numpy_column, value_text, widen
from .convert import NotSerialisableError, convert_value, key_name, orjson_module


def array_values(array: Any, path: str, depth: int) -> Any:
    if array.ndim == 0:
        return convert_value(array[()], path, depth + 1, None)
    if array.ndim == 1:
        return numpy_column(array, Where(path, "", depth)).data()
    if array.dtype.kind in "iufb":
        widened = widen(array, path)
        if array.dtype.kind != "f":
            return widened.tolist()
    return [array_values(row, f"{path}[{i}]", depth + 1) for i, row in enumerate(array)]


def array_text(array: Any, path: str, depth: int) -> str:
    if array.ndim == 0:
        return value_text(convert_value(array[()], path, depth + 1, None))
    if array.ndim == 1:
        return "[" + ",".join(numpy_column(array, Where(path, "", depth)).texts()) + "]"
    orjson = orjson_module()
    if orjson is not None and array.dtype.kind in "iufb":
        import numpy as np

        widened = np.ascontiguousarray(widen(array, path))
        return bytes(orjson.dumps(widened, option=orjson.OPT_SERIALIZE_NUMPY)).decode()
    rows = (array_text(row, f"{path}[{i}]", depth + 1) for i, row in enumerate(array))
    return "[" + ",".join(rows) + "]"


# --- DataFrames, Series, Index ---

# A frame's fields: name -> a column, or name -> the nested fields of a MultiIndex column.
Fields = dict[str, "Column | Fields"]


def pandas_values(value: Any, path: str, depth: int) -> Any:
    import pandas as pd

    if isinstance(value, pd.Series):
        shape, content = _series_shape(value, path, depth)
        if shape == "list":
            return content.data()
        if shape == "object":
            return dict(zip(map(str, value.index.tolist()), content.data(), strict=True))
        return _records(content, len(value))
    if isinstance(value, pd.MultiIndex):
        return pandas_values(pd.DataFrame(index=value), path, depth)
    if isinstance(value, pd.Index):
        return make_column(value, Where(path, "", depth)).data()
    return _records(_frame_fields(value, path, depth), len(value))


def pandas_text(value: Any, path: str, depth: int) -> str:
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
        return pandas_text(pd.DataFrame(index=value), path, depth)
    if isinstance(value, pd.Index):
        return "[" + ",".join(make_column(value, Where(path, "", depth)).texts()) + "]"
    return _records_text(_frame_fields(value, path, depth), len(value))


def _series_shape(series: Any, path: str, depth: int) -> tuple[str, Any]:
    """``list``, ``object`` (a column) or ``records`` (fields), by the Series' index."""
    import pandas as pd

    index = series.index
    if _default_index(index):
        return "list", make_column(series, Where(path, "", depth))
    if (
        not isinstance(index, pd.MultiIndex)
        and pd.api.types.infer_dtype(index, skipna=False) == "string"
        and index.is_unique
    ):
        return "object", make_column(series, Where(path, "", depth))
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
        names = [key_name(part, path) for part in parts]
        where = Where(path, "".join(f"[{name!r}]" for name in names), depth + 1)
        _place(fields, names, make_column(values, where), frame, path)
    return fields


def _place(fields: Fields, names: list[str], column: Column, frame: Any, path: str) -> None:
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
