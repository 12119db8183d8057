"""What calling a setup function changes: setup names, its arguments, process state.

``isolation`` reads the handler; when it calls a function the setup cells define, the function's
summary (computed here, to a fixed point over functions calling each other) says which setup
names it changes through globals, which of its arguments it changes in place, and which process
state it touches. Methods of setup classes that change ``self`` are found here too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from promoter.analysis.state import (
    ARGUMENT_MUTATORS,
    LOCAL_FACTORIES,
    MUTATING_METHODS,
    SERIALISED_STATE,
    FunctionSummary,
    Scan,
    configures_drawing,
    dotted,
    refused_key,
    resolve,
    strip_subscripts,
    under,
)
from promoter.reading.notebook import Cell

__all__ = ["definitions", "self_mutators", "summarise_setup_functions"]


def definitions(cells: list[tuple[Cell, list[ast.stmt]]]) -> set[str]:
    return {
        stmt.name
        for _, statements in cells
        for stmt in statements
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def self_mutators(cells: list[tuple[Cell, list[ast.stmt]]]) -> set[str]:
    """Method names of setup classes that change ``self`` (outside construction)."""
    found: set[str] = set()
    for _, statements in cells:
        for stmt in statements:
            if not isinstance(stmt, ast.ClassDef):
                continue
            for method in stmt.body:
                if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if method.name in ("__init__", "__new__", "__post_init__"):
                    continue
                if any(_changes_name(node, "self") for node in ast.walk(method)):
                    found.add(method.name)
    return found


def _changes_name(node: ast.AST, name: str) -> bool:
    target: ast.AST | None = None
    if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
        node.ctx, ast.Store | ast.Del
    ):
        target = node.value
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MUTATING_METHODS
    ):
        target = node.func.value
    while isinstance(target, ast.Attribute | ast.Subscript):
        target = target.value
    return isinstance(target, ast.Name) and target.id == name


def summarise_setup_functions(scan: Scan, cells: list[tuple[Cell, list[ast.stmt]]]) -> None:
    """What each setup function changes when the handler calls it (to a fixed point)."""
    defs = [
        stmt
        for _, statements in cells
        for stmt in statements
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    for _ in range(len(defs) + 1):
        before = {
            name: (dict(f.mutated_globals), dict(f.state)) for name, f in scan.functions.items()
        }
        for definition in defs:
            scan.functions[definition.name] = _summarise(scan, definition)
        after = {name: (f.mutated_globals, f.state) for name, f in scan.functions.items()}
        if before == after:
            return


def _summarise(scan: Scan, func: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionSummary:
    params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
    declared = {n for node in ast.walk(func) if isinstance(node, ast.Global) for n in node.names}
    local = {
        node.id
        for node in ast.walk(func)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    } - declared
    summary = FunctionSummary(params=params)
    for node in ast.walk(func):
        for target in _changed_targets(scan, node):
            _record(scan, summary, node, target, params, local | set(params))
        if isinstance(node, ast.Call):
            _record_call(scan, summary, node)
    for name in declared & scan.setup:
        summary.mutated_globals.setdefault(name, func.lineno)
    return summary


def _changed_targets(scan: Scan, node: ast.AST) -> Iterator[ast.AST]:
    if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
        node.ctx, ast.Store | ast.Del
    ):
        yield node.value
    elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        yield node.target
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and (node.func.attr in MUTATING_METHODS or node.func.attr in scan.self_mutators)
    ):
        yield node.func.value
    if isinstance(node, ast.Call):
        full = resolve(scan, dotted(node.func))
        if full in ARGUMENT_MUTATORS and node.args:
            yield node.args[0]


def _record(
    scan: Scan,
    summary: FunctionSummary,
    node: ast.AST,
    target: ast.AST,
    params: list[str],
    local: set[str],
) -> None:
    base = strip_subscripts(target)
    while isinstance(base, ast.Attribute | ast.Subscript):
        base = base.value
    if not isinstance(base, ast.Name):
        return
    line = getattr(node, "lineno", 0)
    if base.id in params:
        summary.mutated_params.add(params.index(base.id))
    elif base.id in scan.modules and base.id not in local:
        full = resolve(scan, dotted(strip_subscripts(target)))
        if full is not None:
            summary.state.setdefault(full, line)
    elif base.id in scan.setup and base.id not in local:
        summary.mutated_globals.setdefault(base.id, line)


def _record_call(scan: Scan, summary: FunctionSummary, node: ast.Call) -> None:
    full = resolve(scan, dotted(node.func))
    if (
        full is not None
        and not configures_drawing(full)
        and (
            refused_key(full, store=False) is not None
            or (
                any(under(full, k) for k in SERIALISED_STATE)
                and full.rsplit(".", 1)[-1] not in LOCAL_FACTORIES
            )
        )
    ):
        summary.state.setdefault(full, node.lineno)
    if isinstance(node.func, ast.Name) and node.func.id in scan.functions:
        inner = scan.functions[node.func.id]
        for name, _line in inner.mutated_globals.items():
            summary.mutated_globals.setdefault(name, node.lineno)
        for full_name in inner.state:
            summary.state.setdefault(full_name, node.lineno)
