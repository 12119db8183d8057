"""Request integers that size an allocation or a loop with no upper bound.

``n: int = 10`` followed by ``np.ones(n)``, ``range(n)``, ``[0] * n``, ``"x" * n`` or
``np.zeros((n, m))`` lets one request ask for terabytes: the worker dies of ``MemoryError`` (or
the pod is OOM-killed) and every request it held fails. The data flow is followed through
plain assignments (``size = n * 2``), in the promoted cells after the parameters cell; a field
whose annotation has an upper bound (``Field(le=...)``, ``conint(lt=...)``, a ``Literal``) is
fine. A finding names the field, the cell and the line, and shows the bounded annotation.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from promoter._exceptions import CellSyntaxError, Location
from promoter.analysis.parameters import Parameter, RequestSchema
from promoter.reading.notebook import Notebook
from promoter.reading.source import parse_cell

__all__ = ["unbounded_sizes"]

#: Calls whose arguments size what they build (numpy, torch, random generators, builtins).
_SIZING = frozenset(
    {
        "range",
        "bytearray",
        "bytes",
        "ones",
        "zeros",
        "empty",
        "full",
        "arange",
        "linspace",
        "logspace",
        "eye",
        "identity",
        "tile",
        "repeat",
        "rand",
        "randn",
        "randint",
        "random",
        "random_sample",
        "standard_normal",
        "normal",
        "uniform",
        "integers",
        "choice",
        "permutation",
        "poisson",
        "binomial",
        "exponential",
    }
)
_INTEGERS = frozenset(
    {"int", "conint", "PositiveInt", "NonNegativeInt", "NegativeInt", "NonPositiveInt"}
)


def unbounded_sizes(notebook: Notebook, request: RequestSchema) -> list[tuple[str, Location]]:
    """Warnings for integer request fields that size an allocation or a loop, unbounded.

    Args:
        notebook: The notebook.
        request: Its request schema.

    Returns:
        One warning per field (at its first use), with the cell and line of the use.
    """
    fields = {p.name: p for p in request.parameters if _unbounded_integer(p.annotation)}
    found: list[tuple[str, Location]] = []
    if not fields:
        return found
    tainted = {name: name for name in fields}  # variable -> the field it comes from
    warned: set[str] = set()
    after = False
    for cell in notebook.cells:
        if cell is request.cell:
            after = True
            continue
        if not after or cell.cell_type != "code" or not cell.promoted:
            continue
        try:
            tree = parse_cell(notebook, cell)[1]
        except CellSyntaxError:
            continue  # reported where the cell is compiled
        _propagate(tree, tainted)
        for node, field in _sinks(tree, tainted):
            if field in warned:
                continue
            warned.add(field)
            found.append((_message(fields[field], node), notebook.at(cell, node.lineno)))
    return found


def _unbounded_integer(annotation: str) -> bool:
    """Whether ``annotation`` is an integer type with no upper bound."""
    try:
        tree = ast.parse(annotation, mode="eval")
    except SyntaxError:
        return False
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    if not names & _INTEGERS or "Literal" in names or names & {"float", "str", "list", "dict"}:
        return False
    bounds = {k.arg for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords}
    return not bounds & {"le", "lt"}


def _propagate(tree: ast.Module, tainted: dict[str, str]) -> None:
    """Mark the names assigned from an expression that uses a tainted name."""
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and node.value:
                field = _uses(node.value, tainted)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name in _names(target):
                        if field and name not in tainted:
                            tainted[name] = field
                            changed = True


def _sinks(tree: ast.Module, tainted: dict[str, str]) -> Iterator[tuple[ast.expr, str]]:
    """The sizing calls and sequence repetitions that a tainted name reaches."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called(node.func) in _SIZING:
            arguments = [*node.args, *(k.value for k in node.keywords)]
            field = next((f for a in arguments if (f := _uses(a, tainted))), None)
            if field:
                yield node, field
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for sequence, count in ((node.left, node.right), (node.right, node.left)):
                if _is_sequence(sequence) and (field := _uses(count, tainted)):
                    yield node, field
                    break


def _uses(node: ast.expr, tainted: dict[str, str]) -> str | None:
    """The field a tainted name in ``node`` comes from (not through ``len``/``min``)."""
    if isinstance(node, ast.Call) and _called(node.func) in {"min", "len", "clip"}:
        return None  # min(n, 1000) is a bound
    if isinstance(node, ast.Name):
        return tainted.get(node.id)
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr) and (field := _uses(child, tainted)):
            return field
    return None


def _names(target: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def _called(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _is_sequence(node: ast.expr) -> bool:
    literal = isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    return literal or isinstance(node, ast.List | ast.Tuple | ast.ListComp | ast.JoinedStr)


def _message(field: Parameter, node: ast.expr) -> str:
    use = ast.unparse(node)
    use = use if len(use) <= 60 else use[:57] + "..."
    return (
        f"request field {field.name!r} sizes `{use}` with no upper bound: one request with a "
        f"huge {field.name} can exhaust the worker's memory (or run for ever); bound it, e.g. "
        f"`{field.name}: Annotated[int, Field(ge=0, le=10_000)] = {field.default!r}`"
    )
