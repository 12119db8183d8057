"""The type allow-list: which names a type expression from a notebook may use.

Annotations in a notebook (request fields, the response cell) are notebook text. They reach
generated code only after ``safe_annotation`` has checked them against this allow-list and
re-emitted them from their syntax tree; literal defaults get their type from ``type_of_value``.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from promoter._exceptions import Location, ParameterError

__all__ = [
    "CALLABLES",
    "TYPE_NAMES",
    "build_type",
    "imports_for",
    "model_imports",
    "names_in",
    "safe_annotation",
    "type_of_value",
]

#: Names an annotation may use, and the module that provides each one (``None``: a builtin).
TYPE_NAMES: dict[str, str | None] = {
    **dict.fromkeys(
        ["int", "float", "str", "bool", "bytes", "list", "dict", "tuple", "set", "frozenset"]
    ),
    **dict.fromkeys(["Annotated", "Literal", "Optional", "Union", "Any"], "typing"),
    **dict.fromkeys(
        [
            "Field",
            "conint",
            "confloat",
            "constr",
            "conlist",
            "PositiveInt",
            "NegativeInt",
            "NonNegativeInt",
            "NonPositiveInt",
            "PositiveFloat",
            "NegativeFloat",
            "NonNegativeFloat",
            "NonPositiveFloat",
            "StrictInt",
            "StrictFloat",
            "StrictStr",
            "StrictBool",
            "HttpUrl",
            "AnyUrl",
        ],
        "pydantic",
    ),
    **dict.fromkeys(["date", "datetime", "time", "timedelta"], "datetime"),
    "Decimal": "decimal",
    "UUID": "uuid",
}
#: The allowed names that may be called (``Field(ge=1)``, ``conint(gt=0)``).
CALLABLES = frozenset({"Field", "conint", "confloat", "constr", "conlist"})
_FORBIDDEN_FIELD_ARGS = {"default_factory", "validation_alias", "alias", "serialization_alias"}
_ALLOWED_NODES = (
    ast.Subscript,
    ast.Tuple,
    ast.List,
    ast.Constant,
    ast.BinOp,
    ast.BitOr,
    ast.UnaryOp,
    ast.USub,
    ast.Load,
    ast.Call,
    ast.keyword,
    ast.Dict,
)


def type_of_value(value: Any) -> str:
    """The Python type expression of a literal default.

    Raises:
        TypeError: The value has no JSON representation (bytes, complex, ...).
    """
    if value is None:
        return "Any | None"
    if isinstance(value, bool | int | float | str):
        return type(value).__name__
    if isinstance(value, list | set | frozenset):
        return f"{type(value).__name__}[{_union(value)}]"
    if isinstance(value, tuple):
        if not value:
            return "tuple[Any, ...]"
        return "tuple[" + ", ".join(type_of_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return f"dict[{_union(value.keys())}, {_union(value.values())}]"
    raise TypeError(f"{type(value).__name__} values cannot be sent as JSON")


def _union(values: Any) -> str:
    kinds = {type_of_value(v) for v in values}
    if not kinds:
        return "Any"
    if {"int", "float"} <= kinds and "bool" not in kinds:
        kinds.discard("int")
    optional = "Any | None" in kinds
    kinds.discard("Any | None")
    text = " | ".join(sorted(kinds)) or "Any"
    return f"{text} | None" if optional and kinds else text


def safe_annotation(node: ast.expr, where: Location) -> str:
    """Validate an annotation against the allow-list and re-emit it from its syntax tree.

    Raises:
        ParameterError: The annotation uses something outside the allow-list.
    """
    clean = _AnnotationChecker(where).visit(node)
    return ast.unparse(clean)


class _AnnotationChecker(ast.NodeTransformer):
    """Accepts builtins, typing, pydantic and datetime types; rewrites ``typing.X`` to ``X``."""

    def __init__(self, where: Location) -> None:
        self.where = where

    def _refuse(self, node: ast.AST, why: str) -> ParameterError:
        return ParameterError(
            f"unsupported annotation `{ast.unparse(node)}`: {why}",
            location=self.where,
            hint="use builtins (int, list[str], ...), typing (Annotated, Literal, Optional) "
            "or pydantic types (Field(ge=..), PositiveInt, ...)",
        )

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if not isinstance(node, _ALLOWED_NODES):
            raise self._refuse(node, f"`{type(node).__name__}` is not allowed in a type")
        if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.BitOr):
            raise self._refuse(node, "only `|` may combine types")
        if isinstance(node, ast.Constant) and not isinstance(
            node.value, str | int | float | bool | type(None)
        ):
            raise self._refuse(node, "only str, int, float, bool and None literals")
        return super().generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if not isinstance(node.value, str):
            return self.generic_visit(node)
        # A string in a type is a forward reference, which pydantic resolves only when the
        # model is first used (and then fails: `"Widget"` is not defined). Read it as the type
        # it names, under the same allow-list (`"NoneType"` -> None, `"int"` -> int).
        try:
            named = ast.parse(node.value.strip(), mode="eval").body
        except SyntaxError:
            raise self._refuse(node, "the string is not a type expression") from None
        if isinstance(named, ast.Constant) and isinstance(named.value, str):
            raise self._refuse(node, "a string inside a string")
        found: ast.AST = self.visit(named)
        return ast.copy_location(found, node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        value = self.visit(node.value)
        if isinstance(value, ast.Name) and value.id == "Literal":
            node.value = value
            return self._literal_values(node)
        node.value = value
        if isinstance(value, ast.Name) and value.id == "Annotated":
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            items[0] = self.visit(items[0])  # the type; the rest is metadata
            for index, item in enumerate(items[1:], start=1):
                items[index] = self._metadata(item)
            return node
        node.slice = self.visit(node.slice)
        return node

    def _literal_values(self, node: ast.Subscript) -> ast.AST:
        for item in ast.walk(node.slice):
            if not isinstance(item, ast.Constant | ast.Tuple | ast.Load | ast.UnaryOp | ast.USub):
                raise self._refuse(item, "Literal[...] takes literal values only")
        return node

    def _metadata(self, node: ast.expr) -> ast.expr:
        """Annotated metadata and call arguments: literal data (strings are text), or types."""
        if _is_literal(node):
            return node  # Annotated[int, "a note"], Field("x", examples=["a"])
        result = self.visit(node)
        assert isinstance(result, ast.expr)
        return result

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        node.value = self._metadata(node.value)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "NoneType":  # type(None): pydantic does not know the name
            return ast.copy_location(ast.Constant(value=None), node)
        if node.id not in TYPE_NAMES:
            raise self._refuse(node, f"`{node.id}` is not a known type")
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.attr in TYPE_NAMES:
            return ast.copy_location(ast.Name(id=node.attr, ctx=ast.Load()), node)
        raise self._refuse(node, "only `typing.X`, `pydantic.X` or `datetime.X` attributes")

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = self.visit(node.func)
        if not isinstance(func, ast.Name) or func.id not in CALLABLES:
            raise self._refuse(node, "only Field(...), conint(...) and similar calls")
        for kw in node.keywords:
            if kw.arg is None or kw.arg in _FORBIDDEN_FIELD_ARGS:
                raise self._refuse(node, f"the argument `{kw.arg or '**'}` is not supported")
        node.func = func
        node.args = [self._metadata(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords]
        return node


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def build_type(annotation: str) -> Any:
    """The Python type of an annotation that ``safe_annotation`` re-emitted, and its schema.

    Building the JSON schema is what makes pydantic check the type's arguments
    (``Field(ge="a")`` passes the allow-list and fails only here).

    Raises:
        Exception: Whatever pydantic raises for a type it cannot build.
    """
    import builtins
    import datetime
    import decimal
    import typing
    import uuid

    import pydantic

    modules = {
        "typing": typing,
        "pydantic": pydantic,
        "datetime": datetime,
        "decimal": decimal,
        "uuid": uuid,
    }
    namespace: dict[str, Any] = {
        name: getattr(modules[module], name) if module else getattr(builtins, name)
        for name, module in TYPE_NAMES.items()
    }
    # Safe: the annotation passed the allow-list and was re-emitted from its syntax tree.
    built = eval(annotation, {"__builtins__": {}}, namespace)
    pydantic.TypeAdapter(built).json_schema()
    return built


def names_in(node: ast.expr) -> set[str]:
    """The allow-listed names an annotation's syntax tree uses."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    return names & set(TYPE_NAMES)


def imports_for(names: set[str]) -> dict[str, tuple[str, ...]]:
    """The modules that provide ``names``, each with the names used from it, sorted."""
    modules: dict[str, list[str]] = {}
    for name in sorted(names):
        module = TYPE_NAMES[name]
        if module is not None:
            modules.setdefault(module, []).append(name)
    return {m: tuple(ns) for m, ns in sorted(modules.items())}


def model_imports(annotations: list[str]) -> dict[str, list[str]]:
    """The non-pydantic modules that type expressions (already validated) need, sorted."""
    words = set(re.findall(r"[A-Za-z_]\w*", " ".join(annotations)))
    modules: dict[str, list[str]] = {}
    for name in sorted(words):
        module = TYPE_NAMES.get(name)
        if module not in (None, "pydantic"):
            modules.setdefault(str(module), []).append(name)
    return dict(sorted(modules.items()))
