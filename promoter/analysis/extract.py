"""Extract the promoted cells into setup code and request-handler code.

Code is read the way nbconvert's Python exporter reads it (IPython syntax translated first), then
split statement by statement: imports are hoisted to the module, magics and shell escapes are
dropped, display-only expressions are dropped, and everything else is kept as written, line for
line, under a comment naming its cell.

Statements that only draw or print (``plt.scatter(...)``, ``print(...)``, ``display(...)``) are
then dropped by a backward slice from the names the response expression reads (see ``_slice``):
a statement is kept when it defines or mutates a name the kept code reads, or when it might have
an effect the service needs (any call not known to only draw or print). Imports only the dropped
statements used go too, so a service that never draws does not depend on matplotlib.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import symtable
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from promoter._exceptions import CellSyntaxError, ContractError, Location
from promoter.analysis.parameters import RequestSchema
from promoter.reading.notebook import Cell, Notebook, Role
from promoter.reading.source import ResponseExpression, parse_cell, source_lines

__all__ = ["Block", "Dropped", "Extraction", "extract"]

# Drawing methods (`plot`, `hist`, `show`) are left to the slice, which keeps them when the
# service's answer is a drawing.
_DISPLAY_METHODS = {"head", "tail", "describe", "info", "sample", "style"}
_DISPLAY_FUNCTIONS = {"display"}
# Calls that only draw or print: functions by name, methods by name on any object, and
# anything reached through a name a drawing module or a drawing call bound.
_PRINTING_FUNCTIONS = {"print", "display", "pprint"}
_DRAWING_METHODS = {"head", "tail", "describe", "info", "plot", "hist", "show", "style", "boxplot"}
_DRAWING_MODULES = {"matplotlib", "seaborn", "plotly", "bokeh", "altair", "IPython", "pprint"}
# Methods that read their object without changing it (a call of any other method on a name the
# response needs counts as a mutation of that name, so the statement is kept).
_READING_METHODS = {
    *_DISPLAY_METHODS,
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
# `%time stmt` and `%%time` run their statement: keep the statement, drop the timing.
_TRANSPARENT_MAGICS = {"time", "capture"}


@dataclass(frozen=True)
class Block:
    """The kept code of one cell."""

    cell: Cell
    code: str


@dataclass(frozen=True)
class Dropped:
    """A statement that is not promoted, and why."""

    what: str
    why: str
    location: Location

    def to_dict(self) -> dict[str, object]:
        """Return the drop as JSON-compatible data."""
        return {"what": self.what, "why": self.why, **self.location.to_dict()}


@dataclass(frozen=True)
class Extraction:
    """What the service runs: hoisted imports, setup blocks, handler blocks, the response.

    Attributes:
        imports: Import statements for the top of the module, in first-seen order.
        setup: Setup blocks (run once at start-up).
        setup_globals: Names the setup blocks define (declared ``global`` in ``setup()``).
        private: Private statements of the parameters cell (``_seed = 42``).
        handler: Handler blocks (run per request), the response cell included.
        response: The source of the response expression.
        rebind: Setup names the handler reassigns (bound locally from the shared value first).
        modules: Top-level modules the promoted code imports (for dependency pinning).
        request_arg: The name of ``run()``'s argument (free of clashes with notebook names).
        dropped: Everything not promoted.
        is_async: The handler awaits at top level (IPython autoawait): ``run`` is ``async def``.
        setup_is_async: The setup awaits at top level: ``setup`` is ``async def``.
        copied: Setup names ``run()`` deep-copies first, because the handler changes them
            (decided by ``_isolation``).
        serialised: Why the route runs one request at a time (``_isolation``; empty: it
            does not).
        restored: Global random generators each request resets to their state after setup
            (``_isolation``).
    """

    imports: tuple[str, ...]
    setup: tuple[Block, ...]
    setup_globals: tuple[str, ...]
    private: tuple[str, ...]
    handler: tuple[Block, ...]
    response: str
    rebind: tuple[str, ...]
    modules: tuple[str, ...]
    request_arg: str
    dropped: tuple[Dropped, ...] = field(default=())
    is_async: bool = False
    setup_is_async: bool = False
    copied: tuple[str, ...] = ()
    serialised: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()


@dataclass
class _CellCode:
    cell: Cell
    source: str
    tree: ast.Module
    keep_lines: set[int]
    imports: list[ast.Import | ast.ImportFrom]


def extract(notebook: Notebook, request: RequestSchema, response: ResponseExpression) -> Extraction:
    """Split the notebook's promoted cells into the service's setup and handler code.

    Raises:
        CellSyntaxError: A promoted cell does not parse, or uses a magic inside a block.
        ContractError: The handler uses a name only a skipped cell defines.
    """
    dropped: list[Dropped] = []
    response_cell, last = response.cell, response.last
    setup = [_split(notebook, c, dropped) for c in notebook.with_role(Role.SETUP)]
    handler = [
        _split(notebook, c, dropped, last if c is response_cell else None)
        for c in notebook.with_role(Role.HANDLER, Role.RESPONSE)
    ]
    response_src = _response_source(handler[-1].source, last)
    private = tuple(
        ast.get_source_segment(request.source, stmt) or ast.unparse(stmt)
        for stmt in request.private
    )
    all_code = [*setup, *handler]
    _slice(notebook, all_code, [*private, response_src], dropped)
    # run() binds the parameters first, so inside it they shadow module-level imports.
    used = _used_names([_kept(c) for c in setup]) | (
        _used_names([_kept(c) for c in handler] + list(private) + [response_src])
        - {p.name for p in request.parameters}
    )
    imports, modules = _imports(notebook, all_code, used, dropped)
    setup_globals = sorted(set().union(*(_bound(c.tree.body, c.keep_lines) for c in setup)))
    handler_bound = set().union(*(_bound(c.tree.body, c.keep_lines) for c in handler))
    params = [p.name for p in request.parameters]
    extraction = Extraction(
        imports=tuple(imports),
        setup=tuple(Block(c.cell, _kept(c)) for c in setup if _kept(c).strip()),
        setup_globals=tuple(setup_globals),
        private=private,
        handler=tuple(Block(c.cell, _kept(c)) for c in handler if _kept(c).strip()),
        response=response_src,
        rebind=tuple(sorted(handler_bound & set(setup_globals) - set(params))),
        modules=tuple(modules),
        request_arg=_free_name(["request", "req", "promoter_request"], all_code, params),
        dropped=tuple(dropped),
        is_async=_awaits(handler, "\n".join([*private, response_src])),
        setup_is_async=_awaits(setup),
    )
    _check_names(notebook, extraction, handler, setup, params)
    return extraction


def _split(
    notebook: Notebook, cell: Cell, dropped: list[Dropped], last: ast.stmt | None = None
) -> _CellCode:
    source, tree = parse_cell(notebook, cell)
    keep: set[int] = set()
    imports: list[ast.Import | ast.ImportFrom] = []
    lines = source_lines(source)
    body = tree.body[:-1] if isinstance(last, ast.Expr) else tree.body
    for stmt in body:
        span = set(range(_first_line(stmt), (stmt.end_lineno or stmt.lineno) + 1))
        where = notebook.at(cell, stmt.lineno)
        text = lines[stmt.lineno - 1].strip()
        if isinstance(stmt, ast.Import | ast.ImportFrom) and stmt.col_offset == 0:
            imports.append(stmt)
            continue
        magic = _magic(stmt)
        if magic is not None:
            name, argument = magic
            if name in _TRANSPARENT_MAGICS and argument.strip():
                keep |= span  # rewritten below into the statement itself
                continue
            original = _line(cell.source, stmt.lineno) or text
            why = "shell escape" if name == "!" else f"IPython magic %{name}"
            dropped.append(Dropped(original or text, why, where))
            continue
        if isinstance(stmt, ast.Expr) and _display_only(stmt.value):
            if not isinstance(stmt.value, ast.Constant):
                dropped.append(Dropped(text, "display-only expression", where))
            continue
        _refuse_nested_magic(notebook, cell, stmt)
        keep |= span
    code = _CellCode(cell, source, tree, keep, imports)
    _unwrap_transparent(notebook, code)
    return code


def _line(source: str, number: int) -> str:
    lines = source_lines(source.replace("\r\n", "\n").replace("\r", "\n"))
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""


def _first_line(stmt: ast.stmt) -> int:
    """The statement's first line, its decorators included (``stmt.lineno`` is the ``def``)."""
    decorators = getattr(stmt, "decorator_list", [])
    return min([stmt.lineno, *(int(d.lineno) for d in decorators)])


def _magic(stmt: ast.stmt) -> tuple[str, str] | None:
    """``(magic name, argument)`` when ``stmt`` is a translated magic or shell escape."""
    value = stmt.value if isinstance(stmt, ast.Expr | ast.Assign) else None
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute):
        return None
    owner = value.func.value
    if not (
        isinstance(owner, ast.Call)
        and isinstance(owner.func, ast.Name)
        and owner.func.id == "get_ipython"
    ):
        return None
    args = [a.value for a in value.args if isinstance(a, ast.Constant)]
    if value.func.attr in ("system", "getoutput"):
        return "!", str(args[0]) if args else ""
    name = str(args[0]) if args else value.func.attr
    argument = str(args[-1]) if len(args) > 1 else ""
    return name, argument


def _refuse_nested_magic(notebook: Notebook, cell: Cell, stmt: ast.stmt) -> None:
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and node.id == "get_ipython":
            raise CellSyntaxError(
                "an IPython magic or shell escape inside a block cannot be promoted",
                location=notebook.at(cell, node.lineno),
                hint="move it out of the block into its own line (it is then dropped), "
                "or tag the cell `skip`",
            )


def _unwrap_transparent(notebook: Notebook, code: _CellCode) -> None:
    transparent = [
        stmt
        for stmt in code.tree.body
        if stmt.lineno in code.keep_lines and (_magic(stmt) or ("", ""))[0] in _TRANSPARENT_MAGICS
    ]
    if not transparent:
        return
    lines = source_lines(code.source)
    keep: set[int] = set()
    out: list[str] = []
    shift = 0
    for stmt in code.tree.body:
        first, last = _first_line(stmt), stmt.end_lineno or stmt.lineno
        out.extend(lines[len(out) - shift : first - 1])
        if stmt in transparent:
            statement = (_magic(stmt) or ("", ""))[1].rstrip("\n")
            inner = source_lines(statement) or ["pass"]
            keep |= set(range(len(out) + 1, len(out) + len(inner) + 1))
            out.extend(inner)
            shift += len(inner) - (last - first + 1)
        else:
            if first in code.keep_lines:
                keep |= set(range(len(out) + 1, len(out) + last - first + 2))
            out.extend(lines[first - 1 : last])
    out.extend(lines[len(out) - shift :])
    code.source = "\n".join(out) + "\n"
    try:
        code.tree = ast.parse(code.source)
    except SyntaxError as exc:
        raise CellSyntaxError(
            f"the statement under a %time magic does not parse: {exc.msg}",
            location=notebook.at(code.cell),
        ) from None
    code.keep_lines = keep


def _display_only(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name) and func.id in _DISPLAY_FUNCTIONS:
            return True
        if isinstance(func, ast.Attribute) and func.attr in _DISPLAY_METHODS:
            return _pure(func.value) and all(_pure(a) for a in expr.args)
        return False
    return _pure(expr)


def _pure(expr: ast.AST) -> bool:
    effects = (ast.Call, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)
    return not any(isinstance(node, effects) for node in ast.walk(expr))


def _kept(code: _CellCode) -> str:
    lines = source_lines(code.source)
    kept = [
        line
        for number, line in enumerate(lines, start=1)
        if number in code.keep_lines or (not line.strip() or line.lstrip().startswith("#"))
    ]
    return "\n".join(kept).strip("\n")


def _response_source(source: str, last: ast.stmt) -> str:
    if isinstance(last, ast.AnnAssign) and isinstance(last.target, ast.Name):
        return last.target.id
    return ast.get_source_segment(source, last) or ""


def _imports(
    notebook: Notebook, cells: list[_CellCode], used: set[str], dropped: list[Dropped]
) -> tuple[list[str], list[str]]:
    """The hoisted import statements the service uses, and the third-party modules imported."""
    statements: list[str] = []
    modules: list[str] = []
    for code in cells:
        for stmt in code.imports:
            clone = _used_part(stmt, used, notebook.at(code.cell, stmt.lineno), dropped)
            if clone is None:
                continue
            modules.extend(_roots(clone))
            if (text := ast.unparse(clone)) not in statements:
                statements.append(text)
        modules.extend(_nested_imports(code))
    statements.sort(key=lambda s: not s.startswith("from __future__"))
    third_party = sorted(
        {m for m in modules if m not in sys.stdlib_module_names and m != "__future__"}
    )
    return statements, third_party


def _used_part(
    stmt: ast.Import | ast.ImportFrom, used: set[str], where: Location, dropped: list[Dropped]
) -> ast.Import | ast.ImportFrom | None:
    """The import with only the names the service uses; each other name is listed as dropped."""
    kept = [a for a in stmt.names if a.name == "*" or _binding(a) in used]
    for alias in stmt.names:
        if alias not in kept:
            what = f"import {ast.unparse(alias)}"
            if isinstance(stmt, ast.ImportFrom):
                what = f"from {'.' * stmt.level}{stmt.module or ''} {what}"
            dropped.append(Dropped(what, "import unused by the service", where))
    if not kept:
        return None
    if isinstance(stmt, ast.ImportFrom):
        return ast.ImportFrom(stmt.module, kept, stmt.level)
    return ast.Import(kept)


def _nested_imports(code: _CellCode) -> list[str]:
    """Modules imported inside kept statements (functions, ``if`` blocks): pinned, not hoisted."""
    nested = [
        node
        for statement in code.tree.body
        if statement.lineno in code.keep_lines
        for node in ast.walk(statement)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return [m for node in nested for m in _roots(node)]


def _binding(alias: ast.alias) -> str:
    return alias.asname or alias.name.split(".")[0]


def _roots(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module.split(".")[0]] if node.module and not node.level else []
    return [a.name.split(".")[0] for a in node.names]


def _used_names(sources: list[str]) -> set[str]:
    used: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return used


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound(body: list[ast.stmt], keep: set[int]) -> set[str]:
    """Names a list of top-level statements binds in its own scope."""
    names: set[str] = set()
    for stmt in body:
        if stmt.lineno not in keep:
            continue
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(stmt.name)
            continue
        for node in _walk_scope(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                names.add(node.id)
            elif isinstance(node, ast.alias):
                names.add(_binding(node))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
    return names


_NESTED_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _walk_scope(node: ast.AST) -> list[ast.AST]:
    """Like ``ast.walk``, but not into nested scopes (functions, classes, lambdas, ...)."""
    nested = _NESTED_SCOPES
    found: list[ast.AST] = []
    todo = [node]
    while todo:
        current = todo.pop()
        found.append(current)
        if current is not node and isinstance(current, nested):
            continue
        todo.extend(ast.iter_child_nodes(current))
    return found


def _free_name(candidates: list[str], cells: list[_CellCode], params: list[str]) -> str:
    taken = set(params).union(*(_names_in(c.tree) for c in cells))
    return next((name for name in candidates if name not in taken), "promoter_request_")


def _indent(code: str) -> str:
    return "\n".join(("    " + line) if line.strip() else "" for line in source_lines(code))


def _check_names(
    notebook: Notebook,
    extraction: Extraction,
    handler: list[_CellCode],
    setup: list[_CellCode],
    params: list[str],
) -> None:
    """Refuse code that uses a name only skipped cells define (it would fail in the service)."""
    if any(line.endswith("import *") for line in extraction.imports):
        return  # a star import may define any name; the verify step runs the code instead
    skeleton = _skeleton(extraction, params)
    try:
        table = symtable.symtable(skeleton, "pipeline", "exec")
    except SyntaxError:
        return  # a construct only valid at top level (e.g. `yield`); the verify step reports it
    defined = set(dir(builtins)) | {
        s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()
    }
    defined |= set(extraction.setup_globals) | {"__name__", "__file__"}
    for child in table.get_children():
        scope = handler if child.get_name() == "run" else setup
        for symbol in child.get_symbols():
            name = symbol.get_name()
            if symbol.is_global() and symbol.is_referenced() and name not in defined:
                _undefined(notebook, name, scope, params)


def _skeleton(extraction: Extraction, params: list[str]) -> str:
    """The pipeline module in outline, for the symbol table of ``_check_names``."""
    module = "\n".join(extraction.imports)
    global_names = ", ".join(extraction.setup_globals)
    setup_body = "\n".join(_indent(b.code) for b in extraction.setup)
    run_body = "\n".join(
        [*(f"    {p} = None" for p in params)]
        + [_indent(p) for p in extraction.private]
        + [_indent(b.code) for b in extraction.handler]
        + [f"    return ({extraction.response})"]
    )
    return (
        f"{module}\n"
        f"{'async ' if extraction.setup_is_async else ''}def setup():\n"
        f"    {'global ' + global_names if global_names else 'pass'}\n"
        f"{setup_body or '    pass'}\n\n"
        f"{'async ' if extraction.is_async else ''}def run():\n{run_body}\n"
    )


def _undefined(
    notebook: Notebook, name: str, cells: list[_CellCode], params: Sequence[str] = ()
) -> None:
    uses = [
        (code, node)
        for code in cells
        for node in ast.walk(code.tree)
        if isinstance(node, ast.Name) and node.id == name
    ]
    if not uses:
        return
    # Prefer a use in promoted lines; the response expression is not among them.
    code, node = next(((c, n) for c, n in uses if n.lineno in c.keep_lines), uses[-1])
    where = notebook.at(code.cell, node.lineno)
    if name in params and code.cell.role is Role.SETUP:
        raise ContractError(
            f"`{name}` is a request parameter, and it is used by a setup cell "
            f"({_cell_name(code.cell)}), which runs once at start-up, before any request",
            location=where,
            hint="move the code that uses it into a handler cell (untagged, between "
            "`parameters` and `response`)",
        )
    definer = _defined_in_skipped(notebook, name)
    if definer is not None:
        raise ContractError(
            f"`{name}` is not defined in the service: only the skipped "
            f"{_cell_name(definer)} defines it",
            location=where,
            hint="untag that cell from `skip` (or move it before `response`), "
            "or define the name in a setup or handler cell",
        )
    if _bound_by_parameters_cell(notebook, name):
        raise ContractError(
            f"`{name}` is not defined in the service: the parameters cell "
            f"({_cell_name(notebook.parameters_cell)}) imports it, but only that cell's "
            "assignments are promoted (as request fields)",
            location=where,
            hint="move that import to a setup cell (a cell before "
            "`parameters`, or one tagged `setup`)",
        )
    raise ContractError(
        f"`{name}` is not defined in the service",
        location=where,
        hint="define the name in a setup or handler cell",
    )


def _bound_by_parameters_cell(notebook: Notebook, name: str) -> bool:
    """True if the parameters cell binds ``name`` other than by an assignment (an import).

    The parameters cell's imports run in the notebook but are not promoted: only its
    assignments become request fields.
    """
    cell = notebook.parameters_cell
    try:
        _, tree = parse_cell(notebook, cell)
    except CellSyntaxError:
        return False
    others = [s for s in tree.body if not isinstance(s, ast.Assign | ast.AnnAssign)]
    return name in _bound(others, {s.lineno for s in others})


def _cell_name(cell: Cell) -> str:
    """``cell 3 (id 9f1c)``: numbered from 1, as JupyterLab's status bar counts."""
    return f"cell {cell.index + 1} (id {cell.id})"


def _defined_in_skipped(notebook: Notebook, name: str) -> Cell | None:
    for cell in notebook.with_role(Role.SKIP):
        try:
            _, tree = parse_cell(notebook, cell)
        except CellSyntaxError:
            continue
        if name in _bound(tree.body, set(range(1, cell.source.count("\n") + 2))):
            return cell
    return None


@dataclass(frozen=True)
class _Statement:
    """One kept top-level statement, as the slice sees it."""

    code: _CellCode
    node: ast.stmt
    defines: frozenset[str]
    kills: frozenset[str]
    reads: frozenset[str]
    mutates: frozenset[str]


def _slice(
    notebook: Notebook, cells: list[_CellCode], roots: list[str], dropped: list[Dropped]
) -> None:
    """Drop the statements that only draw or print and that the response does not depend on.

    A backward pass over the kept top-level statements (setup, then handler cells) from the
    names ``roots`` (the response expression and the private parameters) read. If the kept code
    itself draws (it reads ``plt`` or a figure), every drawing statement is kept: the service's
    answer is then a drawing, and matplotlib's current figure ties those statements together.
    """
    statements = [
        _statement(code, node)
        for code in cells
        for node in code.tree.body
        if node.lineno in code.keep_lines
    ]
    drawing = _drawing_names(cells)
    removable = _removable(statements, roots, drawing, keep_drawings=False)
    kept_reads = set().union(
        _used_names(roots), *(s.reads for s in statements if id(s) not in removable)
    )
    if kept_reads & drawing:
        removable = _removable(statements, roots, drawing, keep_drawings=True)
    shared = _shared_lines(statements)
    for statement in statements:
        if id(statement) not in removable:
            continue
        code, node = statement.code, statement.node
        span = set(range(_first_line(node), (node.end_lineno or node.lineno) + 1))
        if span & shared.get(id(code), set()):
            continue  # `x = 1; print(x)` on one line: dropping the line would drop `x = 1`
        code.keep_lines -= span
        text = source_lines(code.source)[node.lineno - 1].strip()
        why = "only draws or prints; the response does not depend on it"
        dropped.append(Dropped(text, why, notebook.at(code.cell, node.lineno)))


def _statement(code: _CellCode, node: ast.stmt) -> _Statement:
    defines = _bound([node], {node.lineno})
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
    if isinstance(node, _NESTED_SCOPES):
        return _scope_reads(node)
    if isinstance(node, ast.For):
        inner = set().union(*(_reads(n) for n in [*node.body, *node.orelse]))
        own = {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        return _reads(node.iter) | _reads(node.target) | (inner - own)
    found: set[str] = set()
    for sub in _walk_scope(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            found.add(sub.id)
        elif sub is not node and isinstance(sub, _NESTED_SCOPES):
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
    statements: list[_Statement], roots: list[str], drawing: set[str], *, keep_drawings: bool
) -> set[int]:
    """The ids of the statements the backward slice from ``roots`` leaves out."""
    needed = _used_names(roots)
    removable: set[int] = set()
    for statement in reversed(statements):
        affects = statement.defines | statement.mutates
        if not affects & needed and _only_draws(statement.node, drawing, keep_drawings):
            removable.add(id(statement))
            continue
        needed = (needed - statement.kills) | statement.reads
    return removable


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
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            chain = _attribute_chain(sub.func)
            # `df.plot.scatter(...)` draws from `df`; `df.fillna(0, inplace=True)` changes it.
            reading = (
                chain[-1] in _READING_METHODS
                or (chain[-1] in _FRAME_METHODS and not _in_place(sub))
                or set(chain[1:-1]) & _DRAWING_METHODS
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


def _in_place(call: ast.Call) -> bool:
    """Whether ``call`` passes ``inplace=`` anything but a literal false value."""
    return any(
        k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value)
        for k in call.keywords
    )


def _drawing_names(cells: list[_CellCode]) -> set[str]:
    """Names bound to drawing modules, to a drawing call's result, or looping over those."""
    names = {
        _binding(alias)
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
            elif isinstance(node, ast.For) and _names_in(node.iter) & names:
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
        for line in range(_first_line(node), (node.end_lineno or node.lineno) + 1):
            key = (id(statement.code), line)
            seen[key] = seen.get(key, 0) + 1
    shared: dict[int, set[int]] = {}
    for (code, line), count in seen.items():
        if count > 1:
            shared.setdefault(code, set()).add(line)
    return shared


def _awaits(cells: list[_CellCode], expression: str = "") -> bool:
    """Whether the kept code (or ``expression``) awaits at top level, not inside a ``def``."""
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    todo: list[ast.AST] = [s for c in cells for s in c.tree.body if s.lineno in c.keep_lines]
    if expression:
        with contextlib.suppress(SyntaxError):  # reported by the verify step
            todo.append(ast.parse(f"(\n{expression}\n)"))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith):
            return True
        if isinstance(node, ast.comprehension) and node.is_async:
            return True
        if not isinstance(node, scopes):
            todo.extend(ast.iter_child_nodes(node))
    return False
