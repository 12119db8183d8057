"""Extract the promoted cells into setup code and request-handler code.

Code is read the way nbconvert's Python exporter reads it (IPython syntax translated first), then
split statement by statement: imports are hoisted to the module, magics and shell escapes are
dropped, display-only expressions are dropped, and everything else is kept as written, line for
line, under a comment naming its cell.

Statements that only draw or print (``plt.scatter(...)``, ``print(...)``, ``display(...)``) are
then dropped by a backward slice from the names the response expression reads (see
:mod:`promoter.analysis.slicing`). Imports only the dropped statements used go too, so a service
that never draws does not depend on matplotlib.
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
from promoter.analysis.code import (
    CellCode,
    Dropped,
    binding,
    bound,
    first_line,
    names_in,
    used_names,
)
from promoter.analysis.draws import draws, import_aliases
from promoter.analysis.magics import (
    cell_magics_dropped,
    magic,
    magic_output,
    original_line,
    refuse_nested_magic,
    unwrap_transparent,
)
from promoter.analysis.parameters import RequestSchema
from promoter.analysis.slicing import backward_slice
from promoter.reading.notebook import Cell, Notebook, Role
from promoter.reading.source import ResponseExpression, parse_cell, source_lines

__all__ = ["Block", "Dropped", "Extraction", "extract"]

# Drawing methods (`plot`, `hist`, `show`) are left to the slice, which keeps them when the
# service's answer is a drawing.
_DISPLAY_METHODS = {"head", "tail", "describe", "info", "sample", "style"}
_DISPLAY_FUNCTIONS = {"display"}


@dataclass(frozen=True)
class Block:
    """The kept code of one cell."""

    cell: Cell
    code: str


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
        closes_figures: Each request closes the pyplot figures it leaves open (``isolation``).
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
    closes_figures: bool = False


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
    aliases = import_aliases([s for c in all_code for s in c.imports])
    backward_slice(notebook, all_code, [*private, response_src], dropped, aliases)
    # run() binds the parameters first, so inside it they shadow module-level imports.
    used = used_names([_kept(c) for c in setup]) | (
        used_names([_kept(c) for c in handler] + list(private) + [response_src])
        - {p.name for p in request.parameters}
    )
    imports, modules = _imports(notebook, all_code, used, dropped)
    setup_globals = sorted(set().union(*(bound(c.tree.body, c.keep_lines) for c in setup)))
    handler_bound = set().union(*(bound(c.tree.body, c.keep_lines) for c in handler))
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
) -> CellCode:
    source, tree = parse_cell(notebook, cell)
    dropped.extend(cell_magics_dropped(notebook, cell))
    keep: set[int] = set()
    imports: list[ast.Import | ast.ImportFrom] = []
    lines = source_lines(source)
    body = tree.body[:-1] if isinstance(last, ast.Expr) else tree.body
    for stmt in body:
        span = set(range(first_line(stmt), (stmt.end_lineno or stmt.lineno) + 1))
        where = notebook.at(cell, stmt.lineno)
        text = lines[stmt.lineno - 1].strip()
        if isinstance(stmt, ast.Import | ast.ImportFrom) and stmt.col_offset == 0:
            imports.append(stmt)
            continue
        found = magic(stmt)
        if found is not None:
            if found.transparent:
                keep |= span  # rewritten below into the statement itself
                continue
            dropped.append(Dropped(original_line(cell, stmt.lineno) or text, found.why, where))
            continue
        if isinstance(stmt, ast.Expr) and _display_only(stmt.value):
            if not isinstance(stmt.value, ast.Constant):
                dropped.append(Dropped(text, "display-only expression", where))
            continue
        refuse_nested_magic(notebook, cell, stmt)
        keep |= span
    code = CellCode(cell, source, tree, keep, imports)
    unwrap_transparent(notebook, code)
    return code


def _display_only(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name) and func.id in _DISPLAY_FUNCTIONS:
            return True
        if isinstance(func, ast.Attribute) and func.attr in _DISPLAY_METHODS:
            if func.attr == "sample" and draws(expr, {}):
                return False  # a look that draws: later draws depend on it (see `draws`)
            return _pure(func.value) and all(_pure(a) for a in expr.args)
        return False
    return _pure(expr)


def _pure(expr: ast.AST) -> bool:
    effects = (ast.Call, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)
    return not any(isinstance(node, effects) for node in ast.walk(expr))


def _kept(code: CellCode) -> str:
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
    notebook: Notebook, cells: list[CellCode], used: set[str], dropped: list[Dropped]
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
    kept = [a for a in stmt.names if a.name == "*" or binding(a) in used]
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


def _nested_imports(code: CellCode) -> list[str]:
    """Modules imported inside kept statements (functions, ``if`` blocks): pinned, not hoisted."""
    nested = [
        node
        for statement in code.tree.body
        if statement.lineno in code.keep_lines
        for node in ast.walk(statement)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return [m for node in nested for m in _roots(node)]


def _roots(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module.split(".")[0]] if node.module and not node.level else []
    return [a.name.split(".")[0] for a in node.names]


def _free_name(candidates: list[str], cells: list[CellCode], params: list[str]) -> str:
    taken = set(params).union(*(names_in(c.tree) for c in cells))
    return next((name for name in candidates if name not in taken), "promoter_request_")


def _indent(code: str) -> str:
    return "\n".join(("    " + line) if line.strip() else "" for line in source_lines(code))


def _check_names(
    notebook: Notebook,
    extraction: Extraction,
    handler: list[CellCode],
    setup: list[CellCode],
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
    for code in setup:  # nested scopes too (a comprehension over a parameter)
        for name in sorted(_global_reads(code) & set(params) - defined):
            _undefined(notebook, name, [code], params)
    for child in table.get_children():
        scope = handler if child.get_name() == "run" else setup
        for symbol in child.get_symbols():
            name = symbol.get_name()
            if symbol.is_global() and symbol.is_referenced() and name not in defined:
                _undefined(notebook, name, scope, params)


def _global_reads(code: CellCode) -> set[str]:
    """The module-level names a cell's code reads, in any of its scopes.

    A name a nested scope binds itself (a dataclass field ``qty: int``, a function's argument)
    is not a read of the module-level name, however it is spelt.
    """
    try:
        table = symtable.symtable(ast.unparse(code.tree), "cell", "exec")
    except SyntaxError:
        return set()
    found: set[str] = set()
    pending = [table]
    while pending:
        scope = pending.pop()
        top = scope.get_type() == "module"
        for symbol in scope.get_symbols():
            if symbol.is_referenced() and (top or symbol.is_global()):
                found.add(symbol.get_name())
        pending.extend(scope.get_children())
    return found


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
    notebook: Notebook, name: str, cells: list[CellCode], params: Sequence[str] = ()
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
    output = magic_output(notebook, name, where)
    if output is not None:
        raise output
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
    return name in bound(others, {s.lineno for s in others})


def _cell_name(cell: Cell) -> str:
    """``cell 3 (id 9f1c)``: numbered from 1, as JupyterLab's status bar counts."""
    return f"cell {cell.index + 1} (id {cell.id})"


def _defined_in_skipped(notebook: Notebook, name: str) -> Cell | None:
    for cell in notebook.with_role(Role.SKIP):
        try:
            _, tree = parse_cell(notebook, cell)
        except CellSyntaxError:
            continue
        if name in bound(tree.body, set(range(1, cell.source.count("\n") + 2))):
            return cell
    return None


def _awaits(cells: list[CellCode], expression: str = "") -> bool:
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
