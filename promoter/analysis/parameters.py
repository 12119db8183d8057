"""The request schema, read from the `parameters` cell.

Each top-level assignment is one request field. The type comes from the annotation (validated
against an allow-list, then re-emitted from its syntax tree, so notebook text never reaches
generated code except as ``repr`` literals and known names) or else from the literal default.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from promoter._exceptions import Location, ParameterError
from promoter.analysis.types import (
    build_type,
    imports_for,
    names_in,
    safe_annotation,
    type_of_value,
)
from promoter.reading.notebook import Cell, Notebook, Role
from promoter.reading.source import parse_cell

__all__ = [
    "Parameter",
    "RequestSchema",
    "infer_request",
    "request_error",
    "request_json_schema",
]


@dataclass(frozen=True)
class Parameter:
    """One request field.

    Attributes:
        name: The notebook variable and the JSON field name.
        annotation: A safe Python type expression for the request model.
        default: The default value (Python literal, or the runtime value when not literal).
        description: The trailing comment of the assignment.
        line: The line of the assignment in the parameters cell.
        annotated: Whether the type came from an explicit annotation.
        literal_default: Whether the default is a literal (else taken from the executed run).
        default_source: A default that is not a literal, as written (``date.today()``).
    """

    name: str
    annotation: str
    default: Any
    description: str | None
    line: int
    annotated: bool
    literal_default: bool = True
    default_source: str | None = None

    @property
    def validate_default(self) -> bool:
        """Whether the service validates the default into the field's type when it is omitted.

        A default from the run is JSON (a ``datetime.date`` default is ``"2024-01-01"``), and a
        literal under an annotation such as ``Path`` or ``Decimal`` is a string: pydantic does
        not validate defaults unless asked, so ``when.year`` would fail on a string.
        """
        return not self.literal_default or (
            self.annotated and bool(_CONVERTED.search(self.annotation))
        )


#: Types whose values a literal or JSON default only stands for (a string for a date).
_CONVERTED = re.compile(r"\b(date|datetime|time|timedelta|Decimal|Path|PurePosixPath|UUID)\b")


@dataclass(frozen=True)
class RequestSchema:
    """The request fields and the rest of the parameters cell.

    Attributes:
        parameters: Public fields, in notebook order.
        private: Statements of the parameters cell kept as code (``_private`` names).
        imports: Modules the annotations need, mapped to the names used from each.
        cell: The parameters cell.
        warnings: Messages with their locations.
    """

    parameters: tuple[Parameter, ...]
    private: tuple[ast.stmt, ...]
    source: str
    imports: dict[str, tuple[str, ...]]
    cell: Cell
    warnings: tuple[tuple[str, Location], ...]

    def with_defaults(self, values: dict[str, Any]) -> RequestSchema:
        """Fill the defaults that are not literals from an executed run's values."""
        params = tuple(
            p if p.literal_default else replace(p, default=values.get(p.name))
            for p in self.parameters
        )
        return replace(self, parameters=params)

    def defaults(self) -> dict[str, Any]:
        """The default request, as the notebook's parameters cell defines it."""
        return {p.name: p.default for p in self.parameters}


def infer_request(notebook: Notebook) -> RequestSchema:
    """Read the request fields from the notebook's parameters cell.

    Raises:
        ParameterError: A parameter cannot become a request field.
        CellSyntaxError: The parameters cell does not parse.
    """
    cell = notebook.parameters_cell
    source, tree = parse_cell(notebook, cell)
    comments = _trailing_comments(source)
    found: dict[str, Parameter] = {}
    private: list[ast.stmt] = []
    warnings: list[tuple[str, Location]] = []
    names_used: set[str] = set()
    for stmt in tree.body:
        where = notebook.at(cell, stmt.lineno)
        if isinstance(stmt, ast.Import | ast.ImportFrom) or _is_docstring(stmt):
            continue
        target, annotation, value = _assignment(stmt, where)
        if target.startswith("_"):
            private.append(stmt)
            continue
        param = _parameter(target, annotation, value, comments.get(stmt.lineno), stmt, where)
        if annotation is not None:
            names_used |= names_in(annotation)
        if target in found:
            # papermill silently keeps the last one; two request fields cannot share a name.
            raise ParameterError(
                f"parameter `{target}` is assigned twice (lines {found[target].line} and "
                f"{stmt.lineno} of the parameters cell)",
                location=where,
                hint="keep one assignment per parameter; rename or delete the other one",
            )
        found[target] = param
    _check_shadowing(notebook, found)
    _check_buildable(notebook, found.values())
    return RequestSchema(
        parameters=tuple(found.values()),
        private=tuple(private),
        source=source,
        imports=imports_for(names_used),
        cell=cell,
        warnings=tuple(warnings),
    )


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def _assignment(stmt: ast.stmt, where: Location) -> tuple[str, ast.expr | None, ast.expr | None]:
    hint = "write one `name = literal` (or `name: type = literal`) per line"
    if isinstance(stmt, ast.AnnAssign):
        if not isinstance(stmt.target, ast.Name):
            raise ParameterError("only plain names can be parameters", location=where, hint=hint)
        if stmt.value is None:
            raise ParameterError(
                f"parameter `{stmt.target.id}` has a type but no default value",
                location=where,
                hint="give it a default so the notebook runs as it is, e.g. `x: int = 0`",
            )
        return stmt.target.id, stmt.annotation, stmt.value
    if isinstance(stmt, ast.Assign):
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            raise ParameterError(
                "the parameters cell may only assign plain names "
                "(no unpacking, chained, attribute or item assignment)",
                location=where,
                hint=hint,
            )
        return stmt.targets[0].id, None, stmt.value
    raise ParameterError(
        f"the parameters cell may only contain assignments, not `{type(stmt).__name__}` statements",
        location=where,
        hint="move other code to a setup or handler cell; " + hint,
    )


def _parameter(
    name: str,
    annotation: ast.expr | None,
    value: ast.expr | None,
    comment: str | None,
    stmt: ast.stmt,
    where: Location,
) -> Parameter:
    if keyword.iskeyword(name) or not name.isidentifier():
        raise ParameterError(f"`{name}` cannot be a parameter name", location=where)
    literal, is_literal = _literal(value)
    if annotation is not None:
        type_src = safe_annotation(annotation, where)
    elif is_literal:
        type_src = _type_or_error(literal, name, where)
    else:
        raise ParameterError(
            f"the default of `{name}` is not a literal "
            f"(`{ast.unparse(value) if value else ''}`), so its type is unknown",
            location=where,
            hint="use a literal default, or annotate it with the type of its value, e.g. "
            f"`{name}: {suggested_type(value)} = {_short_source(value)}`",
        )
    return Parameter(
        name=name,
        annotation=type_src,
        default=literal if is_literal else None,
        description=comment,
        line=stmt.lineno,
        annotated=annotation is not None,
        literal_default=is_literal,
        default_source=None if is_literal or value is None else ast.unparse(value),
    )


#: What a call to a well-known function returns, as an annotation.
_RETURNS = {
    "int": "int",
    "len": "int",
    "float": "float",
    "round": "float",
    "sum": "float",
    "min": "float",
    "max": "float",
    "abs": "float",
    "str": "str",
    "bool": "bool",
    "range": "list[int]",
    "arange": "list[float]",
    "linspace": "list[float]",
    "array": "list[float]",
    "zeros": "list[float]",
    "ones": "list[float]",
    "list": "list[float]",
    "dict": "dict[str, float]",
    "Timestamp": "datetime.datetime",
    "to_datetime": "datetime.datetime",
    "today": "datetime.date",
    "now": "datetime.datetime",
}
#: Constructors whose name is the type (``datetime.date(2024, 1, 1)`` -> ``datetime.date``).
_CONSTRUCTORS = frozenset(
    {"date", "datetime", "time", "timedelta", "Decimal", "Path", "PurePosixPath", "UUID"}
)


def suggested_type(value: ast.expr | None) -> str:
    """An annotation matching what a non-literal default evaluates to, guessed from its syntax.

    Never evaluated: a call names its type (``datetime.date(...)``, ``Decimal(...)``), a
    well-known function its result (``len`` -> ``int``, ``np.arange`` -> ``list[float]``),
    ``np.pi`` a ``float``.
    """
    if isinstance(value, ast.Call):
        callee = value.func
        last = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
        if last in _CONSTRUCTORS:
            return ast.unparse(callee)
        if last in ("today", "now") and isinstance(callee, ast.Attribute):
            base = ast.unparse(callee.value)
            if base.split(".")[-1] in ("date", "datetime"):
                return base
        return _RETURNS.get(last, "float")
    if isinstance(value, ast.Attribute):
        # np.pi, math.e: a number; anything else (an enum member) is best a string, or
        # `Literal[...]` of its values (enum classes are not request types).
        return "float" if ast.unparse(value.value) in ("np", "numpy", "math") else "str"
    if isinstance(value, ast.JoinedStr):
        return "str"
    if isinstance(value, ast.ListComp | ast.List):
        return "list[float]"
    if isinstance(value, ast.DictComp | ast.Dict):
        return "dict[str, float]"
    if isinstance(value, ast.Compare | ast.BoolOp):
        return "bool"
    return "float"


def _short_source(value: ast.expr | None) -> str:
    text = ast.unparse(value) if value is not None else "..."
    return text if len(text) <= 40 else "..."


def _literal(value: ast.expr | None) -> tuple[Any, bool]:
    if value is None:
        return None, False
    try:
        return ast.literal_eval(value), True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, False


def _type_or_error(value: Any, name: str, where: Location) -> str:
    try:
        return type_of_value(value)
    except TypeError as exc:
        raise ParameterError(
            f"the default of `{name}` has no JSON type: {exc}",
            location=where,
            hint="use int, float, str, bool, None, or lists/dicts of them",
        ) from None


def _trailing_comments(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and tok.start[0] in code_lines:
                text = tok.string.lstrip("#").strip()
                if text and not text.startswith(("type:", "noqa")):
                    comments[tok.start[0]] = text
            elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                code_lines.add(tok.start[0])
    except (tokenize.TokenError, SyntaxError):
        return comments
    return comments


def _check_shadowing(notebook: Notebook, params: dict[str, Parameter]) -> None:
    shadowing = {name for name in params if hasattr(builtins, name)}
    if not shadowing:
        return
    for cell in notebook.with_role(Role.HANDLER, Role.RESPONSE):
        _, tree = parse_cell(notebook, cell)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in shadowing
            ):
                name = node.func.id
                raise ParameterError(
                    f"parameter `{name}` shadows the builtin `{name}()`, which this cell calls",
                    location=notebook.at(cell, node.lineno),
                    hint=f"rename the parameter (e.g. `{name}_value`) in the parameters cell "
                    f"(cell {notebook.parameters_cell.index + 1}, line {params[name].line})",
                )


def request_json_schema(request: RequestSchema) -> dict[str, Any]:
    """The request's JSON Schema, built by Pydantic from the same types the service declares."""
    model = _request_model(request)
    return model.model_json_schema() if model is not None else {}


def request_error(request: RequestSchema, values: dict[str, Any]) -> str | None:
    """Why the service's request model would reject ``values`` (a JSON body), or ``None``."""
    import pydantic

    model = _request_model(request)
    if model is None:
        return None
    try:
        model.model_validate(values)
    except pydantic.ValidationError as exc:
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
    return None


def _request_model(request: RequestSchema) -> Any:
    import pydantic

    try:
        return _model(request.parameters)
    except (pydantic.PydanticUserError, TypeError, ValueError, NameError):
        return None


def _check_buildable(notebook: Notebook, parameters: Iterable[Parameter]) -> None:
    """Refuse a field pydantic cannot build (``Field(ge="a")``), naming it, before any run."""
    import pydantic

    for p in parameters:
        where = notebook.at(notebook.parameters_cell, p.line)
        try:
            model = _model([p])
            model.model_json_schema()
        except Exception as exc:  # pydantic raises several types, some from its Rust core
            problem = " ".join(str(exc).split())[:300]
            raise ParameterError(
                f"pydantic cannot build the request field `{p.name}: {p.annotation}`: {problem}",
                location=where,
                hint="check the type's arguments (Field(ge=1), conlist(int, min_length=1), ...)",
            ) from None
        if p.validate_default and p.literal_default:
            try:
                model.model_validate({})
            except pydantic.ValidationError as exc:
                problem = "; ".join(e["msg"] for e in exc.errors())[:300]
                raise ParameterError(
                    f"the default of `{p.name}` ({p.default!r}) is not a `{p.annotation}`: "
                    f"{problem}",
                    location=where,
                    hint="give a default of the annotated type",
                ) from None


def _model(parameters: Iterable[Parameter]) -> Any:
    """The request model as the service declares it: each field under a safe attribute name,
    aliased to its JSON name (a parameter may be called ``model_dump`` or ``json``)."""
    import pydantic

    from promoter.analysis.response import safe_attr

    taken: set[str] = set()
    fields: dict[str, Any] = {
        safe_attr(p.name, taken): (
            build_type(p.annotation),
            pydantic.Field(
                default=p.default,
                description=p.description,
                alias=p.name,
                validate_default=p.validate_default,
            ),
        )
        for p in parameters
    }
    config = pydantic.ConfigDict(extra="forbid", populate_by_name=True)
    return pydantic.create_model("Request", __config__=config, **fields)
