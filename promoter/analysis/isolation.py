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
from dataclasses import dataclass, field, replace

from promoter._exceptions import ContractError, Location
from promoter.analysis.extract import Extraction
from promoter.reading.notebook import Cell, Notebook, Role
from promoter.reading.source import parse_cell

__all__ = ["RESERVED_NAMES", "Isolation", "isolate"]

#: Module-level names of the generated ``pipeline.py`` that notebook code must not rebind.
RESERVED_NAMES = frozenset(
    {"setup", "run", "promoter_run", "promoter_lock", "promoter_copy", "promoter_threading"}
    | {"promoter_random", "promoter_numpy_random", "promoter_rng_state"}
)
#: Global generators whose state ``run()`` restores when the setup cells seed them.
_GENERATORS = {"random": "random.seed", "numpy.random": "numpy.random.seed"}

#: Methods that change their object in place (lists, dicts, sets, deques, arrays, frames, models).
MUTATING_METHODS = frozenset(
    {
        *("append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse"),
        *("update", "setdefault", "popitem", "add", "discard"),
        *("intersection_update", "difference_update", "symmetric_difference_update"),
        *("appendleft", "extendleft", "popleft", "rotate"),
        *("fill", "resize", "put", "itemset", "setflags", "partition"),
        *("fit", "partial_fit", "fit_transform", "fit_predict", "set_params", "set_output"),
        *("__setitem__", "__delitem__", "__setattr__", "__delattr__", "__iadd__"),
    }
)
#: Functions that change their first argument in place.
ARGUMENT_MUTATORS = frozenset(
    {
        *("random.shuffle", "numpy.random.shuffle", "bisect.insort", "bisect.insort_left"),
        *("bisect.insort_right", "heapq.heappush", "heapq.heappop", "heapq.heapify"),
        *("heapq.heapreplace", "heapq.heappushpop", "numpy.copyto", "numpy.put"),
        *("numpy.place", "numpy.putmask", "numpy.fill_diagonal", "setattr", "delattr"),
    }
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
#: Methods whose result is (part of) the object itself, so it aliases shared state.
_ALIAS_METHODS = frozenset({"get", "setdefault", "values", "items", "__getitem__"})
#: Process state no lock can protect: every route, the server and the OS read it.
_REFUSED_STATE = {
    "os.chdir": "the working directory of the whole service",
    "os.fchdir": "the working directory of the whole service",
    "os.putenv": "the environment of the whole service",
    "os.unsetenv": "the environment of the whole service",
    "os.environ": "the environment of the whole service",
    "os.umask": "the file-creation mask of the whole service",
    "sys.path": "the import path of the whole service",
    "sys.modules": "the imported modules of the whole service",
    "sys.setrecursionlimit": "the recursion limit of the whole service",
    "sys.setswitchinterval": "the thread switch interval of the whole service",
    "locale.setlocale": "the locale of the whole service",
    "signal.signal": "the signal handlers of the whole service",
    "socket.setdefaulttimeout": "the socket timeout of the whole service",
}
#: Global state only notebook code reads: serialising the route makes it safe.
_SERIALISED_STATE = {
    "random": "the `random` module's generator",
    "numpy.random": "numpy's global random generator",
    "matplotlib.pyplot": "matplotlib's current figure",
    "matplotlib.use": "matplotlib's backend",
    "matplotlib.rc": "matplotlib's settings",
    "matplotlib.rcParams": "matplotlib's settings",
    "matplotlib.style": "matplotlib's settings",
    "pylab": "matplotlib's current figure",
    "warnings.filterwarnings": "the warning filters",
    "warnings.simplefilter": "the warning filters",
    "warnings.resetwarnings": "the warning filters",
    "numpy.seterr": "numpy's error settings",
    "numpy.set_printoptions": "numpy's print options",
    "pandas.set_option": "pandas' options",
    "pandas.options": "pandas' options",
    "torch.manual_seed": "torch's global random generator",
    "tensorflow.random.set_seed": "tensorflow's global random generator",
}
#: Names in those modules that make a private object rather than use the global one.
_LOCAL_FACTORIES = frozenset(
    {"Random", "SystemRandom", "default_rng", "Generator", "RandomState", "SeedSequence"}
    | {"PCG64", "MT19937", "Philox", "SFC64", "BitGenerator", "catch_warnings", "Figure"}
)
_SHARE_HINT = (
    'declare it in metadata.promoter.shared (e.g. "shared": ["{name}"]) to share it '
    "between requests on purpose"
)


@dataclass(frozen=True)
class Isolation:
    """How the service keeps requests apart.

    Attributes:
        copied: Setup names ``run()`` deep-copies before the handler changes them.
        serialised: Why the route runs one request at a time (empty: it does not).
        findings: What was done and where, for the conversion report.
        restored: Global generators (``random``, ``numpy.random``) the setup cells seed and
            the handler draws from: each request starts from the state setup left.
        declared_global: Names a handler cell declares ``global`` at its top level (shared on
            purpose): ``run()`` must not bind them locally first.
    """

    copied: tuple[str, ...] = ()
    serialised: tuple[str, ...] = ()
    findings: tuple[tuple[str, Location], ...] = ()
    restored: tuple[str, ...] = ()
    declared_global: tuple[str, ...] = ()


@dataclass
class _Function:
    """What calling a function changes: setup names (through globals), its arguments, state."""

    mutated_globals: dict[str, int] = field(default_factory=dict)
    mutated_params: set[int] = field(default_factory=set)
    state: dict[str, int] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)


@dataclass
class _Scan:
    notebook: Notebook
    modules: dict[str, str]
    setup: set[str]
    definitions: set[str]
    shared: set[str]
    functions: dict[str, _Function]
    self_mutators: set[str]
    aliases: dict[str, str] = field(default_factory=dict)
    writes: dict[tuple[int, int], tuple[str, Location]] = field(default_factory=dict)
    copied: dict[str, tuple[str, Location]] = field(default_factory=dict)
    serialised: dict[str, tuple[str, Location]] = field(default_factory=dict)


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
    scan = _Scan(
        notebook=notebook,
        modules=_module_aliases(all_cells),
        setup=setup,
        definitions=_definitions(setup_cells),
        shared=set(notebook.settings.shared),
        functions={},
        self_mutators=_self_mutators(setup_cells),
    )
    _summarise_setup_functions(scan, setup_cells)
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
            f"the setup cells seed {_SERIALISED_STATE[key]} (`{_GENERATORS[key]}`): each "
            "request starts from the state they leave, as the notebook's own run does",
            notebook.at(notebook.with_role(Role.SETUP)[0]),
        )
        for key in restored
    )
    return replace(
        result, findings=findings, restored=restored, declared_global=tuple(sorted(declared))
    )


def _restored(scan: _Scan, setup_cells: list[tuple[Cell, list[ast.stmt]]]) -> tuple[str, ...]:
    """The global generators the handler uses (serialised) that the setup cells seed."""
    seeded = {
        _resolve(scan, _dotted(node.func))
        for _, statements in setup_cells
        for stmt in statements
        for node in ast.walk(stmt)
        if isinstance(node, ast.Call)
    }
    return tuple(k for k, seed in _GENERATORS.items() if k in scan.serialised and seed in seeded)


def _outside_functions(stmt: ast.stmt) -> Iterator[ast.AST]:
    """The nodes of a statement, not descending into function or class bodies."""
    todo: list[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))


def _result(scan: _Scan) -> Isolation:
    findings = [
        (
            f"`{name}` is set up once and changed per request (`{what}`): each request now "
            f"works on its own copy (copy.deepcopy at the start of run(), which costs time for "
            f"large objects); " + _SHARE_HINT.format(name=name),
            where,
        )
        for name, (what, where) in sorted(scan.copied.items())
    ]
    findings += [
        (
            f"`{what}` changes {_SERIALISED_STATE[key]}, which every request shares: the route "
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


def _where(scan: _Scan, cell: Cell, node: ast.AST) -> Location:
    return scan.notebook.at(cell, getattr(node, "lineno", None))


def _dotted(node: ast.AST) -> str | None:
    """``np.random.seed`` for the expression ``np.random.seed``; ``None`` if not a dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _resolve(scan: _Scan, dotted: str | None) -> str | None:
    """The full module path of a dotted name whose first part is an imported module or name."""
    if dotted is None:
        return None
    first, _, rest = dotted.partition(".")
    module = scan.modules.get(first)
    if module is None:
        return None
    return f"{module}.{rest}" if rest else module


def _root(scan: _Scan, node: ast.AST) -> str | None:
    """The variable an expression reaches into (``cache`` for ``cache[user].items``)."""
    while True:
        if isinstance(node, ast.Name):
            return scan.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
            node = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _ALIAS_METHODS
        ):
            node = node.func.value
        else:
            return None


def _find_aliases(scan: _Scan, statements: list[ast.stmt]) -> None:
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
                root = _root(scan, value)
                if root in scan.setup and root != target.id:
                    scan.aliases[target.id] = root


def _inspect_node(scan: _Scan, cell: Cell, node: ast.AST) -> None:
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


def _inspect_call(scan: _Scan, cell: Cell, node: ast.Call) -> None:
    what = ast.unparse(node.func) + "(...)"
    func = node.func
    full = _resolve(scan, _dotted(func))
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
    if isinstance(func, ast.Name) and func.id in scan.functions:
        _call_summary(scan, cell, node, func.id)
    if _writes_a_file(node, full):
        where = _where(scan, cell, node)
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


def _call_summary(scan: _Scan, cell: Cell, node: ast.Call, name: str) -> None:
    summary = scan.functions[name]
    for changed, line in summary.mutated_globals.items():
        if changed in scan.shared:
            continue
        raise ContractError(
            f"`{ast.unparse(node)}` calls `{name}`, which changes the setup name `{changed}` "
            f"(its line {line}): every request would see the changes of the others",
            location=_where(scan, cell, node),
            hint=f"make `{name}` return a new value instead of changing `{changed}`, or "
            + _SHARE_HINT.format(name=changed),
        )
    for full in summary.state:
        _global_state(scan, cell, node, full, f"{name}(...)")
    for index in summary.mutated_params:
        if index < len(node.args):
            _changed(scan, cell, node, node.args[index], ast.unparse(node))


def _refuse_global(scan: _Scan, cell: Cell, node: ast.Global) -> None:
    names = [n for n in node.names if n not in scan.shared]
    if not names:
        return
    raise ContractError(
        f"`global {', '.join(names)}` in a request handler makes every request change a value "
        "the others see",
        location=_where(scan, cell, node),
        hint="return the new value instead of keeping it in a global, or "
        + _SHARE_HINT.format(name=names[0]),
    )


def _changed(scan: _Scan, cell: Cell, node: ast.AST, target: ast.AST, what: str) -> None:
    """``target`` (an expression) is changed in place by ``node``."""
    module = _resolve(scan, _dotted(target)) if not isinstance(target, ast.Subscript) else None
    if module is None and isinstance(target, ast.Attribute | ast.Subscript):
        module = _resolve(scan, _dotted(_strip_subscripts(target)))
    if module is not None:
        _global_state(scan, cell, node, module, what, store=True)
        return
    root = _root(scan, target)
    if root is None or root not in scan.setup or root in scan.shared:
        return
    if root in scan.definitions:
        raise ContractError(
            f"`{what}` changes `{root}`, a function or class the setup cells define: "
            "every request would see the changes of the others",
            location=_where(scan, cell, node),
            hint="keep per-request values in local variables, or " + _SHARE_HINT.format(name=root),
        )
    scan.copied.setdefault(root, (what, _where(scan, cell, node)))


def _strip_subscripts(node: ast.AST) -> ast.AST:
    while isinstance(node, ast.Subscript):
        node = node.value
    return node


def _global_state(
    scan: _Scan, cell: Cell, node: ast.AST, full: str, what: str, *, store: bool = False
) -> None:
    """A call of (or a write into) ``full``, a dotted path in an imported module."""
    if any(_under(full, s) for s in scan.shared):
        return
    refused = _refused(full, store=store)
    if refused is not None:
        raise ContractError(
            f"`{what}` changes {_REFUSED_STATE[refused]}, which every request (and every "
            "other route) shares",
            location=_where(scan, cell, node),
            hint="use paths and settings local to the request (e.g. `Path(folder) / name` "
            "instead of changing directory), or move it to a setup cell",
        )
    key = next((k for k in _SERIALISED_STATE if _under(full, k)), None)
    local = full.rsplit(".", 1)[-1] in _LOCAL_FACTORIES
    if key is not None and not local:
        scan.serialised.setdefault(key, (what, _where(scan, cell, node)))
    elif store and key is None:
        raise ContractError(
            f"`{what}` changes the module `{full.split('.')[0]}`, which every request shares",
            location=_where(scan, cell, node),
            hint="keep per-request values in local variables, or move it to a setup cell",
        )


def _under(full: str, prefix: str) -> bool:
    return full == prefix or full.startswith(prefix + ".")


def _refused(full: str, *, store: bool) -> str | None:
    """The refused state ``full`` changes: a write into it, a call of it (``os.chdir``), or
    a changing method of it (``os.environ.update``); reading (``os.environ.get``) is fine."""
    for key in _REFUSED_STATE:
        if full == key or (store and _under(full, key)):
            return key
        if _under(full, key) and full.rsplit(".", 1)[-1] in MUTATING_METHODS:
            return key
    return None


def _module_aliases(cells: list[tuple[Cell, list[ast.stmt]]]) -> dict[str, str]:
    """What each imported name stands for: ``np`` -> ``numpy``, ``seed`` -> ``random.seed``."""
    found: dict[str, str] = {}
    for _, statements in cells:
        for stmt in statements:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        found[a.asname or a.name.split(".")[0]] = (
                            a.name if a.asname else a.name.split(".")[0]
                        )
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for a in node.names:
                        if a.name != "*":
                            found[a.asname or a.name] = f"{node.module}.{a.name}"
    return found


def _definitions(cells: list[tuple[Cell, list[ast.stmt]]]) -> set[str]:
    return {
        stmt.name
        for _, statements in cells
        for stmt in statements
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def _self_mutators(cells: list[tuple[Cell, list[ast.stmt]]]) -> set[str]:
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


def _summarise_setup_functions(scan: _Scan, cells: list[tuple[Cell, list[ast.stmt]]]) -> None:
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


def _summarise(scan: _Scan, func: ast.FunctionDef | ast.AsyncFunctionDef) -> _Function:
    params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
    declared = {n for node in ast.walk(func) if isinstance(node, ast.Global) for n in node.names}
    local = {
        node.id
        for node in ast.walk(func)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    } - declared
    summary = _Function(params=params)
    for node in ast.walk(func):
        for target in _changed_targets(scan, node):
            _record(scan, summary, node, target, params, local | set(params))
        if isinstance(node, ast.Call):
            _record_call(scan, summary, node)
    for name in declared & scan.setup:
        summary.mutated_globals.setdefault(name, func.lineno)
    return summary


def _changed_targets(scan: _Scan, node: ast.AST) -> Iterator[ast.AST]:
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
        full = _resolve(scan, _dotted(node.func))
        if full in ARGUMENT_MUTATORS and node.args:
            yield node.args[0]


def _record(
    scan: _Scan,
    summary: _Function,
    node: ast.AST,
    target: ast.AST,
    params: list[str],
    local: set[str],
) -> None:
    base = _strip_subscripts(target)
    while isinstance(base, ast.Attribute | ast.Subscript):
        base = base.value
    if not isinstance(base, ast.Name):
        return
    line = getattr(node, "lineno", 0)
    if base.id in params:
        summary.mutated_params.add(params.index(base.id))
    elif base.id in scan.modules and base.id not in local:
        full = _resolve(scan, _dotted(_strip_subscripts(target)))
        if full is not None:
            summary.state.setdefault(full, line)
    elif base.id in scan.setup and base.id not in local:
        summary.mutated_globals.setdefault(base.id, line)


def _record_call(scan: _Scan, summary: _Function, node: ast.Call) -> None:
    full = _resolve(scan, _dotted(node.func))
    if full is not None and (
        _refused(full, store=False) is not None
        or (
            any(_under(full, k) for k in _SERIALISED_STATE)
            and full.rsplit(".", 1)[-1] not in _LOCAL_FACTORIES
        )
    ):
        summary.state.setdefault(full, node.lineno)
    if isinstance(node.func, ast.Name) and node.func.id in scan.functions:
        inner = scan.functions[node.func.id]
        for name, _line in inner.mutated_globals.items():
            summary.mutated_globals.setdefault(name, node.lineno)
        for full_name in inner.state:
            summary.state.setdefault(full_name, node.lineno)


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
