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

The package: ``convert`` (``to_jsonable``, ``dumps`` and every type but tables), ``columns``
(one pandas/numpy column as values or JSON texts) and ``tables`` (arrays, DataFrames, Series,
Index). It imports only the standard library (orjson, numpy and pandas when present and used)
and only itself by relative imports, so the kernel capture can load it under another name.
"""

from .convert import NotSerialisableError, dumps, to_jsonable

__all__ = ["NotSerialisableError", "dumps", "to_jsonable"]
