"""The response schema, inferred from the values the executed notebook returned.

The notebook runs with its defaults and with every parameter set in ``metadata.promoter.examples``;
genson (a maintained JSON-Schema-from-samples builder) merges those JSON answers into one JSON
Schema (keys missing from some answers are not required, mixed types become unions). This module
turns that schema into Pydantic model classes, reading each object either as a record (a nested
model: its keys are field names) or as a map (``dict[str, T]``: its keys are data, such as words,
states, dates or ids), and records why (``ResponseSchema.shapes``, shown by ``promoter inspect``).
An object is a map when its keys are not field names, look like numbered ids, are many, or change
between answers while their values share one type; ``metadata.promoter.maps`` / ``records``
override the decision per JSON path. An explicit annotation on the response cell wins over
inference.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promoter._exceptions import Location, ParameterError
from promoter.analysis.types import TYPE_NAMES, build_type, safe_annotation

__all__ = [
    "ModelClass",
    "ModelField",
    "ResponseSchema",
    "ShapeDecision",
    "child_path",
    "infer_response",
    "safe_attr",
]

_MAX_RECORD_KEYS = 30
_EXAMPLE_ITEMS = 3
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Hexadecimal ids and UUIDs (``"3f2a9c1e"``, ``"a1b2c3d4-..."``): at least 8 characters, a digit.
_ID_KEY = re.compile(r"(?=.*[0-9])[0-9a-fA-F]{8,}(-[0-9a-fA-F]{4,})*")
_RECORD_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_ \-]{0,63}")
# Attribute names a Pydantic model field must not take (BaseModel's own API and our imports).
_RESERVED = {
    "model_config",
    "model_fields",
    "model_computed_fields",
    "model_extra",
    "model_fields_set",
    "copy",
    "dict",
    "json",
    "schema",
    "schema_json",
    "construct",
    "validate",
    "parse_obj",
    "parse_raw",
    "parse_file",
    "from_orm",
    "update_forward_refs",
    "Any",
    "Annotated",
    "BaseModel",
    "ConfigDict",
    "Field",
    "Literal",
    "Optional",
    "RootModel",
    "Union",
}


@dataclass(frozen=True)
class ModelField:
    """One field of a generated model: its JSON key, Python attribute and type."""

    key: str
    attr: str
    annotation: str
    required: bool


@dataclass(frozen=True)
class ModelClass:
    """A generated Pydantic model class."""

    name: str
    fields: tuple[ModelField, ...]
    description: str


@dataclass(frozen=True)
class ShapeDecision:
    """How one object of the answer was read: as a record (a model) or a map, and why."""

    path: str
    kind: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """Return the decision as JSON-compatible data."""
        return {"path": self.path, "kind": self.kind, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} ({self.reason})"


@dataclass(frozen=True)
class ResponseSchema:
    """The response's type, the classes it needs, and its JSON Schema.

    Attributes:
        root: The response's type expression (a class name, or e.g. ``list[LoanRow]``).
        model: The name of the response model class (a ``RootModel`` when root is no class).
        classes: Nested classes, dependencies first (the response model included when it is
            a class).
        json_schema: The answers' merged JSON Schema (from genson).
        sample: The JSON value the notebook returned with its defaults.
        kind: The Python type of the notebook's value.
        annotated: Whether the type came from an explicit annotation.
        samples: Every answer the schema was inferred from: the defaults', then one per example.
        shapes: How each object of the answers was read (record or map) and why.
    """

    root: str
    model: str
    classes: tuple[ModelClass, ...]
    json_schema: dict[str, Any]
    sample: Any
    kind: str
    annotated: bool
    samples: tuple[Any, ...] = ()
    shapes: tuple[ShapeDecision, ...] = ()

    @property
    def example(self) -> Any:
        """The defaults' answer for the OpenAPI example, long lists and maps cut short."""
        return _trimmed(self.sample)

    @property
    def is_root_model(self) -> bool:
        """Whether the response model wraps a non-object type (``RootModel``)."""
        return self.root != self.model


def safe_attr(key: str, taken: set[str]) -> str:
    """A valid, unreserved, unused Python attribute name for the JSON key ``key``."""
    attr = key
    if not (attr.isidentifier() and attr.isascii()) or keyword.iskeyword(attr):
        attr = re.sub(r"\W+", "_", attr.encode("ascii", "ignore").decode()).strip("_").lower()
        if not attr or attr[0].isdigit() or keyword.iskeyword(attr):
            attr = f"field_{attr}" if attr else "field"
    if attr.startswith("model_"):
        # Pydantic reserves names *starting* with model_dump/model_validate: a suffix is not enough.
        attr = f"field_{attr}"
    elif attr in _RESERVED or attr in TYPE_NAMES or attr.startswith("__"):
        # A field named like a type (`int`, `list`) would shadow it for the fields below it.
        attr = f"{attr.strip('_')}_"
    base, n = attr, 2
    while attr in taken:
        attr, n = f"{base}_{n}", n + 1
    taken.add(attr)
    return attr


def infer_response(
    sample: Any,
    kind: str,
    prefix: str,
    annotation: str | None,
    where: Location,
    *,
    examples: Sequence[Any] = (),
    maps: Sequence[str] = (),
    records: Sequence[str] = (),
    data_keyed: Mapping[str, str] | None = None,
) -> tuple[ResponseSchema, list[tuple[str, Location]]]:
    """Build the response model from the notebook's JSON answers, merged.

    Args:
        sample: The JSON answer to the default parameters.
        kind: The Python type of the defaults' value (for messages).
        prefix: The class-name prefix (the notebook's name in CamelCase).
        annotation: The response cell's explicit type annotation, if any.
        where: The response cell's location, for warnings.
        examples: The JSON answers to the example parameter sets (merged with ``sample``).
        maps: JSON paths of objects to read as maps (``metadata.promoter.maps``).
        records: JSON paths of objects to read as records (``metadata.promoter.records``).
        data_keyed: JSON paths of objects the code keys by data (``datamaps``), with why;
            maps unless ``records`` names them.

    Returns:
        The schema and any warnings.
    """
    from genson import SchemaBuilder

    samples = (sample, *examples)
    builder = SchemaBuilder()
    for answer in samples:
        builder.add_object(answer)
    schema = builder.to_schema()
    warnings: list[tuple[str, Location]] = []
    if kind == "builtins.NoneType":
        warnings.append((_NONE_WARNING, where))
    model = f"{prefix}Response"
    common = {"json_schema": schema, "sample": sample, "kind": kind, "samples": samples}
    declared = _declared(annotation, where, warnings)
    if declared is not None:
        return ResponseSchema(declared, model, (), annotated=True, **common), warnings
    shapes = _Shapes(prefix, len(samples), maps, records)
    shapes.data_keyed = dict(data_keyed or {})
    root = shapes.annotation(schema, "$", "Item", name=model)
    for key, paths in (("maps", maps), ("records", records)):
        for path in sorted(set(paths) - shapes.used):
            message = f"metadata.promoter.{key} names {path}, which is no object of the answers"
            warnings.append((message, where))
    classes, decisions = tuple(shapes.classes), tuple(shapes.decisions)
    inferred = ResponseSchema(root, model, classes, annotated=False, shapes=decisions, **common)
    return inferred, warnings


def _declared(
    annotation: str | None, where: Location, warnings: list[tuple[str, Location]]
) -> str | None:
    """The response cell's own annotation when it is safe and pydantic builds it, else a warning."""
    if annotation is None:
        return None
    try:
        root = safe_annotation(_parse_expr(annotation), where)
        build_type(root)
    except ParameterError as exc:
        warnings.append((f"{exc.message}; the response type is inferred instead", where))
        return None
    except Exception as exc:  # pydantic raises several types, some from its Rust core
        problem = " ".join(str(exc).split())[:300]
        message = f"pydantic cannot build the response annotation `{annotation}`: {problem}"
        warnings.append((f"{message}; the response type is inferred instead", where))
        return None
    return root


_NONE_WARNING = (
    "the response cell's value is None (does it end in print(...), an assignment, or a call "
    "that returns nothing?): the service would answer null; end the cell with the value to return"
)


def _parse_expr(text: str) -> Any:
    import ast

    return ast.parse(text, mode="eval").body


class _Namer:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.used: set[str] = {f"{prefix}Response", f"{prefix}Request"}

    def new(self, hint: str) -> str:
        words = re.findall(r"[A-Za-z0-9]+", hint)
        base = self.prefix + ("".join(w[:1].upper() + w[1:] for w in words) or "Item")
        name, n = base, 2
        while name in self.used:
            name, n = f"{base}{n}", n + 1
        self.used.add(name)
        return name


def child_path(path: str, key: str) -> str:
    """The JSON path of ``key`` under the object at ``path`` (``$.a``, ``$["a b"]``)."""
    import json

    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"


class _Shapes:
    """Turns the merged JSON Schema into type expressions, reading each object as a record
    (a model class) or a map (``dict[str, T]``) and remembering why."""

    def __init__(
        self, prefix: str, count: int, maps: Sequence[str], records: Sequence[str]
    ) -> None:
        self.namer = _Namer(prefix)
        self.count = count
        self.maps, self.records = set(maps), set(records)
        self.classes: list[ModelClass] = []
        self.decisions: list[ShapeDecision] = []
        self.used: set[str] = set()
        self.data_keyed: dict[str, str] = {}

    def annotation(
        self, schema: dict[str, Any], path: str, hint: str, *, item: bool = False, name: str = ""
    ) -> str:
        if "anyOf" in schema:
            # No alternative takes the response model's name: the model wraps their union.
            parts = [self.annotation(s, path, hint, item=item) for s in schema["anyOf"]]
            return _union(parts)
        kind = schema.get("type")
        if isinstance(kind, list):
            parts = [self.annotation({**schema, "type": k}, path, hint, item=item) for k in kind]
            return _union(parts)
        if kind == "object":
            return self._object(schema, path, hint, item, name)
        if kind == "array":
            items = schema.get("items")
            if not items:
                return "list[Any]"
            item_hint = hint if hint in ("Row", "Item") else f"{hint} item"
            if path == "$" and _is_object(items):
                item_hint = "Row"
            return f"list[{self.annotation(items, f'{path}[*]', item_hint, item=True)}]"
        return {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}.get(
            str(kind), "None" if kind == "null" else "Any"
        )

    def _object(self, schema: dict[str, Any], path: str, hint: str, item: bool, name: str) -> str:
        props: dict[str, Any] = schema.get("properties", {})
        is_map, reason = self._decide(props, set(schema.get("required", [])), path, item)
        self.decisions.append(ShapeDecision(path, "map" if is_map else "record", reason))
        if is_map:
            if not props:
                return "dict[str, Any]"
            from genson import SchemaBuilder

            values = SchemaBuilder()
            for sub in props.values():
                values.add_schema(sub)
            value = self.annotation(values.to_schema(), f"{path}.*", hint, item=True)
            return f"dict[str, {value}]"
        name = name or self.namer.new(hint)
        fields = self._fields(schema, path)
        description = f"The `{hint}` object of the response."
        if path == "$":
            description = "The response of the notebook."
        self.classes.append(ModelClass(name, fields, description))
        return name

    def _decide(
        self, props: dict[str, Any], required: set[str], path: str, item: bool
    ) -> tuple[bool, str]:
        keys = list(props)
        if path in self.maps or path in self.records:
            self.used.add(path)
            key = "maps" if path in self.maps else "records"
            return path in self.maps, f"listed in metadata.promoter.{key}"
        if path in self.data_keyed:
            return True, self.data_keyed[path]
        same = _homogeneous(props.values())
        data = _data_keys(keys, same and not item)
        if data is not None:
            return True, data
        # Keys missing from some answers, values of one type: data (states, words), not fields.
        # Items of a list (or values of a map) are many occurrences of one record: only keys
        # that no two of them share make them maps.
        varying = not required if item else len(required) < len(keys)
        if varying and same:
            where = "in every item" if item else "in every answer"
            return True, f"keys change with the data: {len(required)} of {len(keys)} {where}"
        if self.count == 1 and not item and same and len(keys) > 1:
            return False, (
                "field names, one answer only: if the keys are data, add parameter sets to "
                "metadata.promoter.examples or list the path in metadata.promoter.maps"
            )
        optional = len(keys) - len(required)
        return False, "field names" + (f" ({optional} optional)" if optional else "")

    def _fields(self, schema: dict[str, Any], path: str) -> tuple[ModelField, ...]:
        required = set(schema.get("required", []))
        taken: set[str] = set()
        fields = []
        for key, sub in schema["properties"].items():
            annotation = self.annotation(sub, child_path(path, key), key)
            is_required = key in required
            if not is_required and not annotation.endswith("| None") and annotation != "Any":
                annotation += " | None"
            fields.append(ModelField(key, safe_attr(key, taken), annotation, is_required))
        return tuple(fields)


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object"


def _data_keys(keys: list[str], numbered: bool) -> str | None:
    """Why the keys, by their shape and count alone, are data (``None`` if they may be fields).

    Args:
        keys: The object's keys, over every answer.
        numbered: Whether keys that differ only in a trailing number count as ids.
    """
    if not keys:
        return "no keys in any answer"
    odd = [k for k in keys if not _RECORD_KEY.fullmatch(k) or _ID_KEY.fullmatch(k)]
    if odd:
        return f"keys are data, not field names (e.g. {odd[0]!r})"
    if numbered and _numbered(keys):
        return f"keys look like ids ({', '.join(keys[:3])}, ...)"
    if len(keys) > _MAX_RECORD_KEYS:
        return f"{len(keys)} keys (more than {_MAX_RECORD_KEYS})"
    return None


def _numbered(keys: list[str]) -> bool:
    """Three or more keys that differ only in a trailing number (``user_1``, ``user_2``)."""
    if len(keys) < 3:
        return False
    stems = {m.group(1) if (m := re.fullmatch(r"(.*?)[_\-]?\d+", k)) else None for k in keys}
    return len(stems) == 1 and None not in stems


def _homogeneous(values: Any) -> bool:
    """Whether every value has the same JSON type (integers counting as numbers)."""
    kinds = set()
    for sub in values:
        kind = sub.get("type", "any") if "anyOf" not in sub else "any"
        names = kind if isinstance(kind, list) else [kind]
        kinds.add(tuple(sorted({"number" if k == "integer" else k for k in names})))
    return len(kinds) == 1


def _trimmed(value: Any) -> Any:
    if isinstance(value, list):
        return [_trimmed(v) for v in value[:_EXAMPLE_ITEMS]]
    if isinstance(value, dict):  # more keys than a record may have: a map, cut too
        kept = list(value.items())[:_MAX_RECORD_KEYS]
        return {k: _trimmed(v) for k, v in kept}
    return value


def _union(parts: list[str]) -> str:
    unique = list(dict.fromkeys(parts))
    if "Any" in unique:
        return "Any"
    if "int" in unique and "float" in unique:
        unique.remove("int")
    optional = "None" in unique
    rest = [p for p in unique if p != "None"]
    if not rest:
        return "None"
    text = " | ".join(rest)
    return f"{text} | None" if optional else text
