"""Maps the code builds from data: objects of the answer whose keys are data, read statically.

Samples alone cannot tell ``{"north": 3, "south": 5}`` (a map keyed by regions) from a record
with two fields when the notebook answers once. The code can: a dict made by ``s.to_dict()``,
``dict(zip(df.name, df.value))``, ``Counter(...)``, a dict comprehension, a dict filled by
``d[row.key] = ...`` in a loop, or a dict literal with a key computed from data (a column
named after a request value) is keyed by data. This module follows the response expression
back through the assignments of the kept code and returns the JSON paths of such objects, each
with the reason ``response`` records (``promoter inspect`` shows it); they become
``dict[str, T]`` without ``metadata.promoter.maps``.
"""

from __future__ import annotations

import ast
import contextlib

from promoter.analysis.response import child_path

__all__ = ["data_keyed"]

#: ``to_dict`` orients whose outer keys are data (the index or the columns).
_MAP_ORIENTS = {"dict", "index", "list", "series"}
_MAP_CALLS = {"Counter", "defaultdict", "OrderedDict"}
_DEPTH = 6


def data_keyed(code: list[str], response: str) -> dict[str, str]:
    """The JSON paths of the answer's objects that the code keys by data, with why.

    Args:
        code: The kept setup and handler code, in order.
        response: The response expression's source.
    """
    assignments: dict[str, list[ast.expr]] = {}
    filled: dict[str, str] = {}
    for source in code:
        with contextlib.suppress(SyntaxError):
            _collect(ast.parse(source), assignments, filled)
    try:
        tree = ast.parse(f"(\n{response}\n)", mode="eval")
    except SyntaxError:
        return {}
    found: dict[str, str] = {}
    _visit(tree.body, "$", assignments, filled, found, _DEPTH)
    return found


def _collect(
    tree: ast.Module, assignments: dict[str, list[ast.expr]], filled: dict[str, str]
) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assignments.setdefault(target.id, []).append(node.value)
                elif (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and not isinstance(target.slice, ast.Constant)
                ):
                    filled.setdefault(target.value.id, ast.unparse(target))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            assignments.setdefault(node.target.id, []).append(node.value)


def _visit(
    expr: ast.expr,
    path: str,
    assignments: dict[str, list[ast.expr]],
    filled: dict[str, str],
    found: dict[str, str],
    depth: int,
) -> None:
    if depth <= 0:
        return
    if isinstance(expr, ast.Name):
        values = assignments.get(expr.id, [])
        if expr.id in filled and any(_empty_dict(v) for v in values):
            found[path] = f"keys come from data: filled by `{filled[expr.id]} = ...`"
        elif values:
            _visit(values[-1], path, assignments, filled, found, depth - 1)
        return
    why = _map_reason(expr)
    if why is not None:
        found[path] = why
        return
    renamed = _renamed_records(expr)
    if renamed is not None:  # rows whose column a request value names: no required field
        found[f"{path}[*]"] = f"keys come from data: `{renamed}` names a column"
        return
    if isinstance(expr, ast.Dict):
        for key, value in zip(expr.keys, expr.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                _visit(value, child_path(path, key.value), assignments, filled, found, depth)
    elif isinstance(expr, ast.ListComp):
        _visit(expr.elt, f"{path}[*]", assignments, filled, found, depth)
    elif isinstance(expr, ast.List):
        for item in expr.elts:
            _visit(item, f"{path}[*]", assignments, filled, found, depth)


def _map_reason(expr: ast.expr) -> str | None:
    """Why ``expr`` makes a dict keyed by data, or ``None``."""
    shown = ast.unparse(expr)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if isinstance(expr, ast.DictComp):
        return f"keys come from data: a dict comprehension (`{shown}`)"
    if isinstance(expr, ast.Dict):
        computed = [k for k in expr.keys if k is not None and not isinstance(k, ast.Constant)]
        if computed:
            return f"keys come from data: `{ast.unparse(computed[0])}` names a key"
        return None
    if not isinstance(expr, ast.Call):
        return None
    func = expr.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name == "to_dict" and _orient(expr) in _MAP_ORIENTS:
        return f"keys come from data: `{shown}`"
    if name == "dict" and expr.args and isinstance(expr.args[0], ast.Call):
        inner = expr.args[0].func
        if isinstance(inner, ast.Name) and inner.id == "zip":
            return f"keys come from data: `{shown}`"
    if name in _MAP_CALLS:
        return f"keys come from data: `{shown}`"
    return None


def _orient(call: ast.Call) -> str:
    given = next((k.value for k in call.keywords if k.arg == "orient"), None)
    if given is None and call.args:
        given = call.args[0]
    if given is None:
        return "dict"
    return str(given.value) if isinstance(given, ast.Constant) else ""


def _empty_dict(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Dict):
        return not expr.keys
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Name)
        and expr.func.id in ("dict", "defaultdict", "Counter")
        and not expr.keywords
    )


def _renamed_records(expr: ast.expr) -> str | None:
    """The name that renames a column of ``df.rename(columns={...: name}).to_dict("records")``."""
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)):
        return None
    if expr.func.attr != "to_dict" or _orient(expr) != "records":
        return None
    for node in ast.walk(expr.func.value):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            columns = next((k.value for k in node.keywords if k.arg == "columns"), None)
            if node.func.attr == "rename" and isinstance(columns, ast.Dict):
                named = [v for v in columns.values if not isinstance(v, ast.Constant)]
                if named:
                    return ast.unparse(named[0])
    return None
