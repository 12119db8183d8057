"""The promoted code of one cell, and the scope rules extraction and the slice share.

A :class:`CellCode` is a cell's source (IPython syntax translated) with the lines the service
keeps; the helpers read which names a statement binds or reads without descending into nested
scopes (functions, classes, lambdas, comprehensions).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from promoter._exceptions import Location
from promoter.reading.notebook import Cell

__all__ = [
    "NESTED_SCOPES",
    "CellCode",
    "Dropped",
    "binding",
    "bound",
    "first_line",
    "names_in",
    "used_names",
    "walk_scope",
]


@dataclass(frozen=True)
class Dropped:
    """A statement that is not promoted, and why."""

    what: str
    why: str
    location: Location

    def to_dict(self) -> dict[str, object]:
        """Return the drop as JSON-compatible data."""
        return {"what": self.what, "why": self.why, **self.location.to_dict()}


@dataclass
class CellCode:
    cell: Cell
    source: str
    tree: ast.Module
    keep_lines: set[int]
    imports: list[ast.Import | ast.ImportFrom]


def first_line(stmt: ast.stmt) -> int:
    """The statement's first line, its decorators included (``stmt.lineno`` is the ``def``)."""
    decorators = getattr(stmt, "decorator_list", [])
    return min([stmt.lineno, *(int(d.lineno) for d in decorators)])


def binding(alias: ast.alias) -> str:
    return alias.asname or alias.name.split(".")[0]


def used_names(sources: list[str]) -> set[str]:
    used: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return used


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def bound(body: list[ast.stmt], keep: set[int]) -> set[str]:
    """Names a list of top-level statements binds in its own scope."""
    names: set[str] = set()
    for stmt in body:
        if stmt.lineno not in keep:
            continue
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(stmt.name)
            continue
        for node in walk_scope(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                names.add(node.id)
            elif isinstance(node, ast.alias):
                names.add(binding(node))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
    return names


NESTED_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def walk_scope(node: ast.AST) -> list[ast.AST]:
    """Like ``ast.walk``, but not into nested scopes (functions, classes, lambdas, ...)."""
    nested = NESTED_SCOPES
    found: list[ast.AST] = []
    todo = [node]
    while todo:
        current = todo.pop()
        found.append(current)
        if current is not node and isinstance(current, nested):
            continue
        todo.extend(ast.iter_child_nodes(current))
    return found
