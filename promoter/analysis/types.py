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
    "annotation_value",
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
    # A path parameter: a string in JSON, a Path in the notebook and in the service.
    **dict.fromkeys(["Path", "PurePosixPath"], "pathlib"),
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

    A string constant survives only as a value: inside ``Literal[...]`` and as a plain literal
    argument of ``Field(...)``/``conint(...)``. Anywhere else Python and Pydantic would read
    it as a forward reference and evaluate it, so it is refused.

    Raises:
        ParameterError: The annotation uses something outside the allow-list.
    """
    clean = _AnnotationChecker(where).visit(node)
    return ast.unparse(clean)


class _AnnotationChecker(ast.NodeTransformer):
    """Accepts builtins, typing, pydantic and datetime types; rewrites ``typing.X`` to ``X``.

    ``visit`` checks a type expression; ``_literal_value`` checks a value (a ``Literal``
    member, a ``Field`` argument): those are the only places a string may stand.
    """

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
        if isinstance(node, ast.Constant):
            self._check_type_constant(node)
        return super().generic_visit(node)

    def _check_type_constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            itself = "`None`" if node.value.strip() == "NoneType" else "the type itself"
            raise self._refuse(
                node,
                "a string in a type is a forward reference, which Python evaluates as code; "
                f"write {itself}, or `Literal[...]` for a fixed set of values",
            )
        if node.value is not Ellipsis and not isinstance(node.value, int | float | type(None)):
            raise self._refuse(node, "only int, float, bool and None literals")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id not in TYPE_NAMES:
            raise self._refuse(node, f"`{node.id}` is not a known type")
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.attr in TYPE_NAMES:
            return ast.copy_location(ast.Name(id=node.attr, ctx=ast.Load()), node)
        raise self._refuse(node, "only `typing.X`, `pydantic.X` or `datetime.X` attributes")

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        node.value = self.visit(node.value)
        if isinstance(node.value, ast.Name) and node.value.id == "Literal":
            members = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            for member in members:
                self._literal_member(member)
            return node
        node.slice = self.visit(node.slice)
        return node

    def _literal_member(self, node: ast.expr) -> None:
        if isinstance(node, ast.Subscript):  # Literal[Literal["a"], "b"]
            self.visit(node)
            return
        value = self._literal_value(node)
        if not isinstance(value, str | int | bool | type(None)):
            raise self._refuse(node, "`Literal[...]` takes str, int, bool or None values")

    def _literal_value(self, node: ast.expr) -> object:
        """A plain literal (numbers, strings, None, and lists/tuples/dicts of them)."""
        plain = (ast.Constant, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load)
        containers = (ast.List, ast.Tuple, ast.Dict, ast.Set)
        for part in ast.walk(node):
            if not isinstance(part, plain + containers):
                raise self._refuse(node, "only literal values may stand here")
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise self._refuse(node, "only literal values may stand here") from None

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = self.visit(node.func)
        if not isinstance(func, ast.Name) or func.id not in CALLABLES:
            raise self._refuse(node, "only Field(...), conint(...) and similar calls")
        type_args = _TYPE_ARGUMENTS.get(func.id, ())
        for kw in node.keywords:
            if kw.arg is None or kw.arg in _FORBIDDEN_FIELD_ARGS:
                raise self._refuse(node, f"the argument `{kw.arg or '**'}` is not supported")
            if kw.arg in type_args:
                kw.value = self.visit(kw.value)
            else:
                self._literal_value(kw.value)
        for index, arg in enumerate(node.args):
            if isinstance(arg, ast.Starred):
                raise self._refuse(node, "`*` arguments are not supported")
            if index in type_args:
                node.args[index] = self.visit(arg)
            else:
                self._literal_value(arg)
        node.func = func
        return node


#: The arguments of the allowed callables that are types (checked as types, strings refused);
#: every other argument must be a plain literal value.
_TYPE_ARGUMENTS: dict[str, tuple[int | str, ...]] = {"conlist": (0, "item_type")}


def annotation_value(text: str) -> Any:
    """Build the type object of a checked annotation without evaluating any text.

    ``text`` is what ``safe_annotation`` returned; its syntax tree is interpreted node by node
    over the allow-list (names looked up, subscripts, ``|``, allowed calls with literal
    arguments), so neither ``eval`` nor a forward reference is involved.

    Raises:
        ValueError: ``text`` uses something ``safe_annotation`` would have refused.
    """
    return _build(ast.parse(text, mode="eval").body, _namespace())


def build_type(annotation: str) -> Any:
    """The type of a checked annotation (``annotation_value``), once pydantic has built it.

    Building the JSON schema is what makes pydantic check the type's arguments
    (``Field(ge="a")`` passes the allow-list and fails only here).

    Raises:
        Exception: Whatever pydantic raises for a type it cannot build.
    """
    import pydantic

    built = annotation_value(annotation)
    pydantic.TypeAdapter(built).json_schema()
    return built


def _build(node: ast.expr, names: dict[str, Any]) -> Any:
    builder = _BUILDERS.get(type(node))
    if builder is None:
        raise ValueError(f"not a checked annotation: `{ast.unparse(node)}`")
    return builder(node, names)


def _build_name(node: Any, names: dict[str, Any]) -> Any:
    if node.id not in names:
        raise ValueError(f"`{node.id}` is not a known type")
    return names[node.id]


def _build_constant(node: Any, names: dict[str, Any]) -> Any:
    if isinstance(node.value, bytes | complex):
        raise ValueError(f"not a checked annotation: `{ast.unparse(node)}`")
    return node.value


def _build_dict(node: Any, names: dict[str, Any]) -> Any:
    if any(k is None for k in node.keys):
        raise ValueError(f"not a checked annotation: `{ast.unparse(node)}`")
    return {_build(k, names): _build(v, names) for k, v in zip(node.keys, node.values, strict=True)}


def _build_binop(node: Any, names: dict[str, Any]) -> Any:
    if not isinstance(node.op, ast.BitOr):
        raise ValueError(f"not a checked annotation: `{ast.unparse(node)}`")
    return _build(node.left, names) | _build(node.right, names)


def _build_unary(node: Any, names: dict[str, Any]) -> Any:
    value = _build(node.operand, names)
    if isinstance(node.op, ast.USub):
        return -value
    if isinstance(node.op, ast.UAdd):
        return +value
    raise ValueError(f"not a checked annotation: `{ast.unparse(node)}`")


def _build_call(node: Any, names: dict[str, Any]) -> Any:
    if not isinstance(node.func, ast.Name) or node.func.id not in CALLABLES:
        raise ValueError(f"not a checked annotation: `{ast.unparse(node)}`")
    args = [_build(a, names) for a in node.args]
    kwargs = {str(k.arg): _build(k.value, names) for k in node.keywords}
    return names[node.func.id](*args, **kwargs)


_BUILDERS: dict[type[ast.AST], Any] = {
    ast.Name: _build_name,
    ast.Constant: _build_constant,
    ast.Subscript: lambda node, names: _build(node.value, names)[_build(node.slice, names)],
    ast.Tuple: lambda node, names: tuple(_build(e, names) for e in node.elts),
    ast.List: lambda node, names: [_build(e, names) for e in node.elts],
    ast.Set: lambda node, names: {_build(e, names) for e in node.elts},
    ast.Dict: _build_dict,
    ast.BinOp: _build_binop,
    ast.UnaryOp: _build_unary,
    ast.Call: _build_call,
}


def _namespace() -> dict[str, Any]:
    import builtins
    import importlib

    return {
        name: getattr(importlib.import_module(module) if module else builtins, name)
        for name, module in TYPE_NAMES.items()
    }


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
