"""The backward slice: drop the statements that only draw or print.

From the names the response expression (and the private parameters) read, a backward pass over
the kept top-level statements keeps a statement when it defines or mutates a name the kept code
reads, or when it might have an effect the service needs (any call not known to only draw or
print). Imports only the dropped statements used go too (``extract`` decides), so a service that
never draws does not depend on matplotlib.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from promoter.analysis.code import (
    NESTED_SCOPES,
    CellCode,
    Dropped,
    binding,
    bound,
    first_line,
    names_in,
    used_names,
    walk_scope,
)
from promoter.analysis.draws import global_draws
from promoter.analysis.state import MUTATING_METHODS
from promoter.reading.notebook import Notebook
from promoter.reading.source import source_lines

__all__ = ["backward_slice"]

# Calls that only draw or print: functions by name, methods by name on any object, and
# anything reached through a name a drawing module or a drawing call bound.
_PRINTING_FUNCTIONS = {"print", "display", "pprint"}
# Statements holding others: how often their random draws run depends on them.
_BLOCKS = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try)
# The methods that draw the object they are called on (pandas' `.plot`, `.plot.bar`, `.hist`).
_PLOTTING = {"plot", "hist", "boxplot"}
_DRAWING_METHODS = {"head", "tail", "describe", "info", "plot", "hist", "show", "style", "boxplot"}
_DRAWING_MODULES = {"matplotlib", "seaborn", "plotly", "bokeh", "altair", "IPython", "pprint"}
# Methods that read their object without changing it (a call of any other method on a name the
# response needs counts as a mutation of that name, so the statement is kept).
_READING_METHODS = {
    *("head", "tail", "describe", "info", "sample", "style"),
    *("plot", "hist", "show", "boxplot"),
    *("predict", "predict_proba", "score", "transform", "mean", "sum", "std", "min", "max"),
    *("count", "get", "keys", "values", "items", "copy", "format", "round", "tolist"),
    *("to_dict", "to_numpy", "to_list", "nunique", "unique", "value_counts", "groupby"),
    *("join", "split", "strip", "upper", "lower", "startswith", "endswith", "agg", "isna"),
}
# pandas methods that return a new object and leave their receiver alone unless called with
# `inplace=True` (so `df.pivot_table(...).plot()` only draws; `df.dropna(inplace=True)` changes
# `df`).
_FRAME_METHODS = {
    *("pivot_table", "pivot", "melt", "stack", "unstack", "to_frame", "rename", "astype"),
    *("sort_values", "sort_index", "reset_index", "set_index", "drop", "dropna", "fillna"),
    *("resample", "rolling", "expanding", "cumsum", "cumprod", "pct_change", "diff", "shift"),
    *("corr", "cov", "median", "quantile", "nlargest", "nsmallest", "isnull", "notna"),
}
_HARMLESS_BUILTINS = {"range", "enumerate", "zip", "sorted", "reversed", "list", "tuple", "len"}
# Calls that only list files (Kaggle's first cell prints every file `os.walk` finds).
_LISTING_CALLS = {"os.walk", "os.listdir", "os.scandir", "glob.glob", "glob.iglob"}
# Calls that write into the objects passed to them (``plt.savefig(buf)``).
_WRITING_CALLS = {"savefig", "write", "dump", "to_csv", "to_json", "to_parquet"}


@dataclass(frozen=True)
class _Statement:
    """One kept top-level statement, as the slice sees it."""

    code: CellCode
    node: ast.stmt
    defines: frozenset[str]
    kills: frozenset[str]
    reads: frozenset[str]
    mutates: frozenset[str]


def backward_slice(
    notebook: Notebook,
    cells: list[CellCode],
    roots: list[str],
    dropped: list[Dropped],
    aliases: dict[str, str],
) -> None:
    """Drop the statements that only draw or print and that the response does not depend on.

    A backward pass over the kept top-level statements (setup, then handler cells) from the
    names ``roots`` (the response expression and the private parameters) read. If the kept code
    itself draws (it reads ``plt`` or a figure), every drawing statement is kept: the service's
    answer is then a drawing, and matplotlib's current figure ties those statements together.
    A dropped statement that draws from a global random generator (``print(df.sample(2))``)
    leaves its draws behind, so later draws get the numbers they got in the notebook.
    """
    statements = [
        _statement(code, node)
        for code in cells
        for node in code.tree.body
        if node.lineno in code.keep_lines
    ]
    drawing = _drawing_names(cells)
    draws = _draw_effects(statements, aliases)
    removable = _removable(statements, roots, drawing, draws, keep_drawings=False)
    kept_reads = set().union(
        used_names(roots), *(s.reads for s in statements if id(s) not in removable)
    )
    if kept_reads & drawing:
        removable = _removable(statements, roots, drawing, draws, keep_drawings=True)
    shared = _shared_lines(statements)
    for statement in statements:
        if id(statement) not in removable:
            continue
        code, node = statement.code, statement.node
        span = set(range(first_line(node), (node.end_lineno or node.lineno) + 1))
        if span & shared.get(id(code), set()):
            continue  # `x = 1; print(x)` on one line: dropping the line would drop `x = 1`
        text = source_lines(code.source)[node.lineno - 1].strip()
        why = "only draws or prints; the response does not depend on it"
        calls = global_draws(node, aliases)
        if calls and isinstance(node, _BLOCKS):
            continue  # how often it draws depends on the block: keep it whole
        code.keep_lines -= span
        if calls:
            _keep_draws(code, node, calls)
            why += "; its random draws are kept, so later draws match the notebook's"
        dropped.append(Dropped(text, why, notebook.at(code.cell, node.lineno)))


def _keep_draws(code: CellCode, node: ast.stmt, calls: list[ast.Call]) -> None:
    """Replace the statement's first line by its draws (``plt.hist(np.random.randn(9))`` keeps
    ``np.random.randn(9)``); the other lines of the statement are left out."""
    lines = source_lines(code.source)
    lines[node.lineno - 1] = "; ".join(ast.unparse(c) for c in calls)
    code.source = "\n".join(lines) + "\n"
    code.keep_lines.add(node.lineno)


def _statement(code: CellCode, node: ast.stmt) -> _Statement:
    defines = bound([node], {node.lineno})
    kills: set[str] = set()  # names the statement always rebinds before anything after it
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        kills = {
            n.id
            for t in targets
            if _plain_target(t)
            for n in ast.walk(t)
            if isinstance(n, ast.Name)
        }
    return _Statement(
        code,
        node,
        frozenset(defines),
        frozenset(kills),
        frozenset(_reads(node)),
        frozenset(_mutated(node)),
    )


def _reads(node: ast.AST) -> set[str]:
    """The names ``node`` reads from outside itself (a ``for`` loop's own target excluded)."""
    if isinstance(node, NESTED_SCOPES):
        return _scope_reads(node)
    if isinstance(node, ast.For):
        inner = set().union(*(_reads(n) for n in [*node.body, *node.orelse]))
        own = {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        return _reads(node.iter) | _reads(node.target) | (inner - own)
    found: set[str] = set()
    for sub in walk_scope(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            found.add(sub.id)
        elif sub is not node and isinstance(sub, NESTED_SCOPES):
            found |= _scope_reads(sub)
    return found


def _scope_reads(scope: ast.AST) -> set[str]:
    """The free names of a function, class, lambda or comprehension (a safe over-estimate)."""
    loads: set[str] = set()
    bound: set[str] = set()
    shared: set[str] = set()  # `global` / `nonlocal` names are the outer ones
    for sub in ast.walk(scope):
        if isinstance(sub, ast.Name):
            (loads if isinstance(sub.ctx, ast.Load) else bound).add(sub.id)
        elif isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, ast.Global | ast.Nonlocal):
            shared.update(sub.names)
    return loads - (bound - shared)


def _removable(
    statements: list[_Statement],
    roots: list[str],
    drawing: set[str],
    draws: dict[int, tuple[set[str], set[str]]],
    *,
    keep_drawings: bool,
) -> set[int]:
    """The ids of the statements the backward slice from ``roots`` leaves out.

    ``draws`` gives, per statement, the generators its random draws change (``np``) and what
    those draws read: a drawing statement that changes a needed name only by its draws is left
    out all the same, because its draws stay (``_keep_draws``).
    """
    needed = used_names(roots)
    removable: set[int] = set()
    for statement in reversed(statements):
        affects = statement.defines | statement.mutates
        changed, reads = draws.get(id(statement), (set(), set()))
        if not (affects & needed) - changed and _only_draws(statement.node, drawing, keep_drawings):
            removable.add(id(statement))
            needed |= reads
            continue
        needed = (needed - statement.kills) | statement.reads
    return removable


def _draw_effects(
    statements: list[_Statement], aliases: dict[str, str]
) -> dict[int, tuple[set[str], set[str]]]:
    """Per simple statement that draws: the names its draws change, and the names they read."""
    found: dict[int, tuple[set[str], set[str]]] = {}
    for statement in statements:
        if isinstance(statement.node, _BLOCKS):
            continue
        calls = global_draws(statement.node, aliases)
        if calls:
            changed = {_attribute_chain(c.func)[0] for c in calls}
            found[id(statement)] = (changed, set().union(*(_reads(c) for c in calls)))
    return found


def _only_draws(node: ast.stmt, drawing: set[str], keep_drawings: bool) -> bool:
    """Whether ``node`` is a call (or an assignment of one) that only draws or prints.

    A ``for`` loop or an ``if`` counts too when every statement in it only draws or prints and
    its loop iterable or condition calls nothing but harmless builtins.
    """
    if isinstance(node, ast.For | ast.If):
        head = node.iter if isinstance(node, ast.For) else node.test
        body = [*node.body, *node.orelse]
        return _harmless(head) and all(_only_draws(n, drawing, keep_drawings) for n in body)
    value = node.value if isinstance(node, ast.Expr | ast.Assign) else None
    if isinstance(node, ast.Assign) and not all(_plain_target(t) for t in node.targets):
        return not keep_drawings and _configures_drawing(node, drawing)
    if not isinstance(value, ast.Call):
        return False
    if any(isinstance(n, ast.Await | ast.Yield | ast.YieldFrom) for n in ast.walk(value)):
        return False
    func = value.func
    if isinstance(func, ast.Name):
        return func.id in _PRINTING_FUNCTIONS or (func.id in drawing and not keep_drawings)
    if keep_drawings or not isinstance(func, ast.Attribute):
        return False
    chain = _attribute_chain(func)
    return bool(set(chain[1:]) & _DRAWING_METHODS) or chain[0] in drawing


def _configures_drawing(node: ast.Assign, drawing: set[str]) -> bool:
    """``plt.rcParams["figure.figsize"] = (12, 4)``: a setting of a drawing module only."""
    return _harmless(node.value) and all(
        isinstance(t, ast.Subscript | ast.Attribute) and _attribute_chain(t)[0] in drawing
        for t in node.targets
    )


def _harmless(expr: ast.expr) -> bool:
    """Whether ``expr`` calls only what changes nothing (``enumerate``, ``zip``, ``os.walk``)."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Await | ast.Yield | ast.YieldFrom | ast.NamedExpr):
            return False
        if isinstance(node, ast.Call):
            func = node.func
            named = isinstance(func, ast.Name) and func.id in _HARMLESS_BUILTINS
            method = isinstance(func, ast.Attribute) and (
                func.attr in {"items", "keys", "values"}
                or ".".join(_attribute_chain(func)) in _LISTING_CALLS
            )
            if not named and not method:
                return False
    return True


def _plain_target(target: ast.expr) -> bool:
    if isinstance(target, ast.Tuple | ast.List):
        return all(_plain_target(t) for t in target.elts)
    return isinstance(target, ast.Name)


def _attribute_chain(node: ast.expr) -> list[str]:
    """``["df", "plot", "scatter"]`` for ``df.plot.scatter``; the root is ``""`` if not a name."""
    names: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call | ast.Subscript):
            node = node.func if isinstance(node, ast.Call) else node.value
        else:
            names.append(node.id if isinstance(node, ast.Name) else "")
            return names[::-1]


def _mutated(node: ast.stmt) -> set[str]:
    """Names ``node`` may change in place: method calls, item/attribute stores, ``+=``, writes."""
    mutated: set[str] = set()
    drawn = _drawn_from(node)
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            chain = _attribute_chain(sub.func)
            # `df.plot.scatter(...)` draws from `df`; `df.fillna(0, inplace=True)` changes it.
            reading = (
                chain[-1] in _READING_METHODS
                or (chain[-1] in _FRAME_METHODS and not _in_place(sub))
                or set(chain[1:-1]) & _DRAWING_METHODS
                or (id(sub) in drawn and chain[-1] not in MUTATING_METHODS and not _in_place(sub))
            )
            if len(chain) > 1 and not reading:
                mutated.add(chain[0])
            if chain[-1] in _WRITING_CALLS or any(k.arg == "file" for k in sub.keywords):
                arguments = [*sub.args, *(k.value for k in sub.keywords)]
                mutated |= {_attribute_chain(a)[0] for a in arguments}
        elif isinstance(sub, ast.Subscript | ast.Attribute) and isinstance(
            sub.ctx, ast.Store | ast.Del
        ):
            mutated.add(_attribute_chain(sub)[0])
        elif isinstance(sub, ast.AugAssign) and isinstance(sub.target, ast.Name):
            mutated.add(sub.target.id)
    return mutated - {""}


def _drawn_from(node: ast.stmt) -> set[int]:
    """The calls whose result only feeds a drawing: ``df.resample("ME").apply(f)`` in
    ``df.resample("ME").apply(f).plot(kind="bar")``, whatever the method (unless it is known to
    change its object in place, or is called with ``inplace=``)."""
    drawn: set[int] = set()
    for sub in ast.walk(node):
        if not (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)):
            continue
        if not set(_attribute_chain(sub.func)[1:]) & _PLOTTING:
            continue
        inner: ast.expr = sub.func.value
        while isinstance(inner, ast.Attribute | ast.Call | ast.Subscript):
            if isinstance(inner, ast.Call):
                drawn.add(id(inner))
                inner = inner.func
            else:
                inner = inner.value
    return drawn


def _in_place(call: ast.Call) -> bool:
    """Whether ``call`` passes ``inplace=`` anything but a literal false value."""
    return any(
        k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value)
        for k in call.keywords
    )


def _drawing_names(cells: list[CellCode]) -> set[str]:
    """Names bound to drawing modules, to a drawing call's result, or looping over those."""
    names = {
        binding(alias)
        for code in cells
        for stmt in code.imports
        for alias in stmt.names
        if _module_of(stmt, alias).split(".")[0] in _DRAWING_MODULES
    }
    for code in cells:
        for node in ast.walk(code.tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                chain = _attribute_chain(node.value.func)
                if chain[0] in names or set(chain[1:]) & {"plot", "hist", "boxplot"}:
                    targets = node.targets
            elif isinstance(node, ast.For) and names_in(node.iter) & names:
                targets = [node.target]  # `for ax in axes.flat:`
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _module_of(stmt: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    return stmt.module if isinstance(stmt, ast.ImportFrom) and stmt.module else alias.name


def _shared_lines(statements: list[_Statement]) -> dict[int, set[int]]:
    """Per cell, the lines that hold more than one statement."""
    seen: dict[tuple[int, int], int] = {}
    for statement in statements:
        node = statement.node
        for line in range(first_line(node), (node.end_lineno or node.lineno) + 1):
            key = (id(statement.code), line)
            seen[key] = seen.get(key, 0) + 1
    shared: dict[int, set[int]] = {}
    for (code, line), count in seen.items():
        if count > 1:
            shared.setdefault(code, set()).add(line)
    return shared
