"""The response schema, inferred from the value the executed notebook returned.

genson (a maintained JSON-Schema-from-samples builder) turns the JSON sample into a JSON Schema;
this module turns that schema into Pydantic model classes: nested objects become nested models,
arrays typed lists. An explicit annotation on the response cell wins over inference.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Any

from promoter._exceptions import Location, ParameterError
from promoter._types import TYPE_NAMES, build_type, safe_annotation

__all__ = ["ModelClass", "ModelField", "ResponseSchema", "infer_response", "safe_attr"]

_MAX_RECORD_KEYS = 30
_RECORD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_ \-]{0,63}$")
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
class ResponseSchema:
    """The response's type, the classes it needs, and its JSON Schema.

    Attributes:
        root: The response's type expression (a class name, or e.g. ``list[LoanRow]``).
        model: The name of the response model class (a ``RootModel`` when root is no class).
        classes: Nested classes, dependencies first (the response model excluded).
        json_schema: The sample's JSON Schema (from genson).
        sample: The JSON value the notebook returned with its defaults.
        kind: The Python type of the notebook's value.
        annotated: Whether the type came from an explicit annotation.
    """

    root: str
    model: str
    classes: tuple[ModelClass, ...]
    json_schema: dict[str, Any]
    sample: Any
    kind: str
    annotated: bool

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
    sample: Any, kind: str, prefix: str, annotation: str | None, where: Location
) -> tuple[ResponseSchema, list[tuple[str, Location]]]:
    """Build the response model from the notebook's JSON answer.

    Args:
        sample: The response value, already JSON-native.
        kind: The Python type of the original value (for messages).
        prefix: The class-name prefix (the notebook's name in CamelCase).
        annotation: The response cell's explicit type annotation, if any.
        where: The response cell's location, for warnings.

    Returns:
        The schema and any warnings.
    """
    from genson import SchemaBuilder

    builder = SchemaBuilder()
    builder.add_object(sample)
    schema = builder.to_schema()
    warnings: list[tuple[str, Location]] = []
    model = f"{prefix}Response"
    if annotation is not None:
        try:
            root = safe_annotation(_parse_expr(annotation), where)
            build_type(root)
            return ResponseSchema(root, model, (), schema, sample, kind, True), warnings
        except ParameterError as exc:
            warnings.append((f"{exc.message}; the response type is inferred instead", where))
        except Exception as exc:  # pydantic raises several types, some from its Rust core
            problem = " ".join(str(exc).split())[:300]
            warnings.append(
                (
                    f"pydantic cannot build the response annotation `{annotation}`: {problem}; "
                    "the response type is inferred instead",
                    where,
                )
            )
    namer = _Namer(prefix)
    classes: list[ModelClass] = []
    if _is_record(schema):
        fields = _fields(schema, classes, namer, model)
        classes.append(ModelClass(model, fields, "The response of the notebook."))
        return ResponseSchema(model, model, tuple(classes), schema, sample, kind, False), warnings
    root = _annotation(schema, classes, namer, "Row" if _rows(schema) else "Item")
    return ResponseSchema(root, model, tuple(classes), schema, sample, kind, False), warnings


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


def _rows(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "array" and _is_record(schema.get("items", {}))


def _is_record(schema: dict[str, Any]) -> bool:
    props = schema.get("properties")
    if schema.get("type") != "object" or not props:
        return False
    return len(props) <= _MAX_RECORD_KEYS and all(_RECORD_KEY.match(k) for k in props)


def _fields(
    schema: dict[str, Any], classes: list[ModelClass], namer: _Namer, owner: str
) -> tuple[ModelField, ...]:
    required = set(schema.get("required", []))
    taken: set[str] = set()
    fields = []
    for key, sub in schema["properties"].items():
        annotation = _annotation(sub, classes, namer, key)
        is_required = key in required
        if not is_required and not annotation.endswith("| None") and annotation != "Any":
            annotation += " | None"
        fields.append(ModelField(key, safe_attr(key, taken), annotation, is_required))
    return tuple(fields)


def _annotation(schema: dict[str, Any], classes: list[ModelClass], namer: _Namer, hint: str) -> str:
    if "anyOf" in schema:
        return _union([_annotation(s, classes, namer, hint) for s in schema["anyOf"]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return _union([_annotation({**schema, "type": k}, classes, namer, hint) for k in kind])
    if kind == "object":
        if _is_record(schema):
            name = namer.new(hint)
            fields = _fields(schema, classes, namer, name)
            classes.append(ModelClass(name, fields, f"The `{hint}` object of the response."))
            return name
        values = [
            _annotation(s, classes, namer, hint) for s in schema.get("properties", {}).values()
        ]
        return f"dict[str, {_union(values) if values else 'Any'}]"
    if kind == "array":
        items = schema.get("items")
        if not items:
            return "list[Any]"
        item_hint = hint if hint in ("Row", "Item") else f"{hint} item"
        return f"list[{_annotation(items, classes, namer, item_hint)}]"
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}.get(
        str(kind), "None" if kind == "null" else "Any"
    )


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
