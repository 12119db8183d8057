"""Requests never see each other: find handler code that changes state requests share.

Setup state is shared read-only (DESIGN.md section 1). This stage reads the promoted cells
statically (``ast``) and decides, for each write to shared state it finds in the handler:

- a setup name changed in place (``history.append(user)``, ``cache[user] = x``,
  ``model.calls += 1``, ``df.drop(..., inplace=True)``, a method of a setup class that changes
  ``self``, a handler function that changes its argument): **copied** -- ``run()`` starts from
  ``copy.deepcopy`` of the shared value, so each request changes its own copy;
- process-global state that the route alone reads (the ``random`` and ``numpy.random``
  generators, matplotlib's current figure, warning filters): the route is **serialised** -- one
  request at a time under a lock, so a request's ``seed`` and its draws are not interleaved with
  another's;
- state nothing can make safe (``global`` names, a setup function that changes a setup name,
  a setup class or function changed, ``os.chdir``, ``os.environ``, ``sys.path``): **refused**
  with a ``ContractError`` naming the cell and line.

``metadata.promoter.shared`` lists the names (or modules, e.g. ``"random"``) a notebook shares
between requests on purpose; they are left alone. Every decision is reported as a finding (the
convert summary and ``inspect`` warnings list it). The same module also refuses module-level
names that would replace the generated pipeline's own (``setup``, ``run``, ...).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from promoter._exceptions import ContractError, Location
from promoter.analysis.draws import draws
from promoter.analysis.extract import Extraction
from promoter.analysis.state import (
    ARGUMENT_MUTATORS,
    GENERATORS,
    LOCAL_FACTORIES,
    MUTATING_METHODS,
    REFUSED_STATE,
    SERIALISED_STATE,
    SHARE_HINT,
    Scan,
    configures_drawing,
    dotted,
    location,
    module_aliases,
    reached_root,
    refused_key,
    resolve,
    strip_subscripts,
    under,
)
from promoter.analysis.summaries import definitions, self_mutators, summarise_setup_functions
from promoter.reading.notebook import Cell, Notebook, Role
from promoter.reading.source import parse_cell

__all__ = ["RESERVED_NAMES", "Isolation", "isolate"]

#: Module-level names of the generated ``pipeline.py`` that notebook code must not rebind.
RESERVED_NAMES = frozenset(
    {"setup", "run", "promoter_run", "promoter_lock", "promoter_copy", "promoter_threading"}
    | {"promoter_random", "promoter_numpy_random", "promoter_rng_state", "promoter_pyplot"}
    | {"promoter_os", "promoter_pathlib", "promoter_sys"}
)
#: Methods that write the file named by their first argument (or ``path``-like keyword).
_FILE_WRITING_METHODS = frozenset(
    {"to_csv", "to_json", "to_parquet", "to_excel", "to_pickle", "to_feather", "to_hdf"}
    | {"write_text", "write_bytes", "savefig"}
)
#: Functions that write a file.
_FILE_WRITERS = frozenset(
    {"numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "joblib.dump"}
    | {"pickle.dump", "json.dump", "torch.save", "shutil.copy", "shutil.copyfile"}
)
_PATH_KEYWORDS = frozenset({"path", "path_or_buf", "fname", "excel_writer", "filename"})


@dataclass(frozen=True)
class Isolation:
    """How the service keeps requests apart.

    Attributes:
        copied: Setup names ``run()`` deep-copies before the handler changes them.
        serialised: Why the route runs one request at a time (empty: it does not).
        findings: What was done and where, for the conversion report.
        restored: Global generators (``random``, ``numpy.random``) the setup cells seed and
            the handler draws from: each request starts from the state setup left.
        closes_figures: The handler draws with pyplot: each request closes the figures it
            leaves open (pyplot keeps every figure until it is closed).
        declared_global: Names a handler cell declares ``global`` at its top level (shared on
            purpose): ``run()`` must not bind them locally first.
    """

    copied: tuple[str, ...] = ()
    serialised: tuple[str, ...] = ()
    findings: tuple[tuple[str, Location], ...] = ()
    restored: tuple[str, ...] = ()
    declared_global: tuple[str, ...] = ()
    closes_figures: bool = False


def isolate(notebook: Notebook, extraction: Extraction, parameters: Sequence[str]) -> Isolation:
    """Decide how the service keeps requests apart, or refuse the notebook.

    Args:
        notebook: The notebook.
        extraction: The promoted code (its setup names and what it dropped).
        parameters: The request fields (they shadow setup names inside ``run()``).

    Raises:
        ContractError: A handler changes state that cannot be kept apart per request, or a
            notebook name replaces one the generated code needs; names cell and line.
    """
    dropped = {(d.location.cell_index, d.location.line) for d in extraction.dropped}
    setup_cells = _trees(notebook, dropped, Role.SETUP)
    handler_cells = _trees(notebook, dropped, Role.HANDLER, Role.RESPONSE)
    all_cells = [*setup_cells, *_trees(notebook, dropped, Role.PARAMETERS), *handler_cells]
    _check_reserved(notebook, setup_cells, all_cells)
    setup = set(extraction.setup_globals) - set(parameters)
    scan = Scan(
        notebook=notebook,
        modules=module_aliases(all_cells),
        setup=setup,
        definitions=definitions(setup_cells),
        shared=set(notebook.settings.shared),
        functions={},
        self_mutators=self_mutators(setup_cells),
    )
    summarise_setup_functions(scan, setup_cells)
    for cell, statements in handler_cells:
        _find_aliases(scan, statements)
        for stmt in statements:
            for node in ast.walk(stmt):
                _inspect_node(scan, cell, node)
    restored = _restored(scan, setup_cells)
    declared = {
        name
        for _, statements in handler_cells
        for stmt in statements
        for node in _outside_functions(stmt)
        if isinstance(node, ast.Global)
        for name in node.names
    }
    result = _result(scan)
    findings = result.findings + tuple(
        (
            f"the setup cells seed {SERIALISED_STATE[key]} (`{GENERATORS[key]}`): each "
            "request starts from the state they leave, as the notebook's own run does",
            notebook.at(notebook.with_role(Role.SETUP)[0]),
        )
        for key in restored
    )
    return replace(
        result,
        findings=findings,
        restored=restored,
        declared_global=tuple(sorted(declared)),
        closes_figures=bool({"matplotlib.pyplot", "pylab"} & set(scan.serialised)),
    )


def _restored(scan: Scan, setup_cells: list[tuple[Cell, list[ast.stmt]]]) -> tuple[str, ...]:
    """The global generators the handler uses (serialised) that the setup cells seed."""
    seeded = {
        resolve(scan, dotted(node.func))
        for _, statements in setup_cells
        for stmt in statements
        for node in ast.walk(stmt)
        if isinstance(node, ast.Call)
    }
    return tuple(k for k, seed in GENERATORS.items() if k in scan.serialised and seed in seeded)


def _outside_functions(stmt: ast.stmt) -> Iterator[ast.AST]:
    """The nodes of a statement, not descending into function or class bodies."""
    todo: list[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))


def _result(scan: Scan) -> Isolation:
    findings = [
        (
            f"`{name}` is set up once and changed per request (`{what}`): each request now "
            f"works on its own copy (copy.deepcopy at the start of run(), which costs time for "
            f"large objects); " + SHARE_HINT.format(name=name),
            where,
        )
        for name, (what, where) in sorted(scan.copied.items())
    ]
    findings += [
        (
            f"`{what}` changes {SERIALISED_STATE[key]}, which every request shares: the route "
            "now runs one request at a time",
            where,
        )
        for key, (what, where) in sorted(scan.serialised.items())
    ]
    findings += [
        (
            f"`{what}` writes a file on every request: concurrent requests write the same file, "
            "and a container's folder may be read-only; return the data in the response, or "
            "write under a folder of its own per request (tempfile.TemporaryDirectory)",
            where,
        )
        for what, where in scan.writes.values()
    ]
    reasons = tuple(
        f"{what} (cell {where.cell_number}, line {where.line})"
        for _, (what, where) in sorted(scan.serialised.items())
    )
    return Isolation(tuple(sorted(scan.copied)), reasons, tuple(findings))


def _trees(
    notebook: Notebook, dropped: set[tuple[int | None, int | None]], *roles: Role
) -> list[tuple[Cell, list[ast.stmt]]]:
    """Each cell's top-level statements the service keeps (what extraction dropped aside)."""
    found = []
    for cell in notebook.with_role(*roles):
        _, tree = parse_cell(notebook, cell)
        found.append((cell, [s for s in tree.body if (cell.index, s.lineno) not in dropped]))
    return found


def _find_aliases(scan: Scan, statements: list[ast.stmt]) -> None:
    """Handler names bound to (part of) a setup value: changing them changes the setup value."""
    for stmt in statements:
        for node in ast.walk(stmt):
            target: ast.AST | None = None
            value: ast.AST | None = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.For | ast.comprehension):
                target, value = node.target, node.iter
            elif isinstance(node, ast.NamedExpr):
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and value is not None:
                root = reached_root(scan, value)
                if root in scan.setup and root != target.id:
                    scan.aliases[target.id] = root


def _inspect_node(scan: Scan, cell: Cell, node: ast.AST) -> None:
    if isinstance(node, ast.Global):
        _refuse_global(scan, cell, node)
    elif isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
        node.ctx, ast.Store | ast.Del
    ):
        deleted = isinstance(node.ctx, ast.Del)
        what = f"del {ast.unparse(node)}" if deleted else f"{ast.unparse(node)} = ..."
        _changed(scan, cell, node, node.value, what)
    elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        _changed(scan, cell, node, node.target, ast.unparse(node))
    elif isinstance(node, ast.Call):
        _inspect_call(scan, cell, node)


def _inspect_call(scan: Scan, cell: Cell, node: ast.Call) -> None:
    what = ast.unparse(node.func) + "(...)"
    func = node.func
    full = resolve(scan, dotted(func))
    if full is not None:
        _global_state(scan, cell, node, full, what)
        if full in ARGUMENT_MUTATORS and node.args:
            _changed(scan, cell, node, node.args[0], what)
    if isinstance(func, ast.Attribute) and full is None:
        in_place = any(
            k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value)
            for k in node.keywords
        )
        if func.attr in MUTATING_METHODS or func.attr in scan.self_mutators or in_place:
            _changed(scan, cell, node, func.value, what)
    # `df.sample(2)`: pandas draws from NumPy's generator (scikit-learn too, unseeded).
    if (full is None or full.startswith("sklearn.")) and draws(node, scan.modules):
        _global_state(scan, cell, node, "numpy.random", what)
    if isinstance(func, ast.Name) and func.id in scan.functions:
        _call_summary(scan, cell, node, func.id)
    if _writes_a_file(node, full):
        where = location(scan, cell, node)
        scan.writes.setdefault((cell.index, node.lineno), (what, where))


def _writes_a_file(node: ast.Call, full: str | None) -> bool:
    """Whether the call writes a file: ``open(p, "w")``, ``df.to_csv(p)``, ``np.save(p, a)``."""
    func = node.func
    if isinstance(func, ast.Name) and func.id == "open":
        mode = node.args[1] if len(node.args) > 1 else None
        mode = next((k.value for k in node.keywords if k.arg == "mode"), mode)
        return isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+") != set()
    if full in _FILE_WRITERS:
        return True
    if not isinstance(func, ast.Attribute) or func.attr not in _FILE_WRITING_METHODS:
        return False
    if func.attr in {"write_text", "write_bytes"}:
        return True  # Path(...).write_text(data): the path is the object
    # `df.to_csv()` with no path returns the text and writes nothing.
    return bool(node.args) or any(k.arg in _PATH_KEYWORDS for k in node.keywords)


def _call_summary(scan: Scan, cell: Cell, node: ast.Call, name: str) -> None:
    summary = scan.functions[name]
    for changed, line in summary.mutated_globals.items():
        if changed in scan.shared:
            continue
        raise ContractError(
            f"`{ast.unparse(node)}` calls `{name}`, which changes the setup name `{changed}` "
            f"(its line {line}): every request would see the changes of the others",
            location=location(scan, cell, node),
            hint=f"make `{name}` return a new value instead of changing `{changed}`, or "
            + SHARE_HINT.format(name=changed),
        )
    for full in summary.state:
        _global_state(scan, cell, node, full, f"{name}(...)")
    for index in summary.mutated_params:
        if index < len(node.args):
            _changed(scan, cell, node, node.args[index], ast.unparse(node))


def _refuse_global(scan: Scan, cell: Cell, node: ast.Global) -> None:
    names = [n for n in node.names if n not in scan.shared]
    if not names:
        return
    raise ContractError(
        f"`global {', '.join(names)}` in a request handler makes every request change a value "
        "the others see",
        location=location(scan, cell, node),
        hint="return the new value instead of keeping it in a global, or "
        + SHARE_HINT.format(name=names[0]),
    )


def _changed(scan: Scan, cell: Cell, node: ast.AST, target: ast.AST, what: str) -> None:
    """``target`` (an expression) is changed in place by ``node``."""
    module = resolve(scan, dotted(target)) if not isinstance(target, ast.Subscript) else None
    if module is None and isinstance(target, ast.Attribute | ast.Subscript):
        module = resolve(scan, dotted(strip_subscripts(target)))
    if module is not None:
        _global_state(scan, cell, node, module, what, store=True)
        return
    root = reached_root(scan, target)
    if root is None or root not in scan.setup or root in scan.shared:
        return
    if root in scan.definitions:
        raise ContractError(
            f"`{what}` changes `{root}`, a function or class the setup cells define: "
            "every request would see the changes of the others",
            location=location(scan, cell, node),
            hint="keep per-request values in local variables, or " + SHARE_HINT.format(name=root),
        )
    scan.copied.setdefault(root, (what, location(scan, cell, node)))


def _global_state(
    scan: Scan, cell: Cell, node: ast.AST, full: str, what: str, *, store: bool = False
) -> None:
    """A call of (or a write into) ``full``, a dotted path in an imported module."""
    if any(under(full, s) for s in scan.shared) or configures_drawing(full):
        return
    refused = refused_key(full, store=store)
    if refused is not None:
        raise ContractError(
            f"`{what}` changes {REFUSED_STATE[refused]}, which every request (and every "
            "other route) shares",
            location=location(scan, cell, node),
            hint="use paths and settings local to the request (e.g. `Path(folder) / name` "
            "instead of changing directory), or move it to a setup cell",
        )
    key = next((k for k in SERIALISED_STATE if under(full, k)), None)
    local = full.rsplit(".", 1)[-1] in LOCAL_FACTORIES
    if key is not None and not local:
        scan.serialised.setdefault(key, (what, location(scan, cell, node)))
    elif store and key is None:
        raise ContractError(
            f"`{what}` changes the module `{full.split('.')[0]}`, which every request shares",
            location=location(scan, cell, node),
            hint="keep per-request values in local variables, or move it to a setup cell",
        )


def _check_reserved(
    notebook: Notebook,
    setup_cells: list[tuple[Cell, list[ast.stmt]]],
    all_cells: list[tuple[Cell, list[ast.stmt]]],
) -> None:
    """Refuse module-level names (setup definitions, imports) the generated pipeline uses."""
    for cell, statements in setup_cells:
        for stmt in statements:
            for name, node in _top_level_bindings(stmt):
                _reserved(notebook, cell, node, name)
    for cell, statements in all_cells:
        for stmt in statements:
            if isinstance(stmt, ast.Import | ast.ImportFrom) and stmt.col_offset == 0:
                for alias in stmt.names:
                    _reserved(notebook, cell, stmt, alias.asname or alias.name.split(".")[0])


def _top_level_bindings(stmt: ast.stmt) -> Iterator[tuple[str, ast.AST]]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield stmt.name, stmt
        return
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    todo: list[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id, node
        elif isinstance(node, nested):
            yield getattr(node, "name", ""), node
            continue
        todo.extend(ast.iter_child_nodes(node))


def _reserved(notebook: Notebook, cell: Cell, node: ast.AST, name: str) -> None:
    if name not in RESERVED_NAMES:
        return
    raise ContractError(
        f"`{name}` is a name the generated service needs for itself "
        f"(its pipeline module defines {', '.join(sorted(RESERVED_NAMES))})",
        location=notebook.at(cell, getattr(node, "lineno", None)),
        hint=f"rename `{name}` in the notebook (e.g. `{name}_step`)",
    )
