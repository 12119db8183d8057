"""The state a request handler may change, and the scan that resolves names to it.

The tables name process state (what no lock can protect, what serialising the route protects,
the global generators) and the methods and functions that change their object; :class:`Scan`
carries what ``isolation`` knows while it reads the handler (imported names, setup names, the
summaries of setup functions), with the helpers that resolve an expression to a module path or to
the setup name it reaches into.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from promoter._exceptions import Location
from promoter.analysis.draws import import_aliases
from promoter.reading.notebook import Cell, Notebook

__all__ = [
    "ARGUMENT_MUTATORS",
    "DRAWING_CONFIGURATION",
    "GENERATORS",
    "LOCAL_FACTORIES",
    "MUTATING_METHODS",
    "REFUSED_STATE",
    "SERIALISED_STATE",
    "SHARE_HINT",
    "FunctionSummary",
    "Scan",
    "configures_drawing",
    "dotted",
    "location",
    "module_aliases",
    "reached_root",
    "refused_key",
    "resolve",
    "strip_subscripts",
    "under",
]

#: Global generators whose state ``run()`` restores when the setup cells seed them.
GENERATORS = {"random": "random.seed", "numpy.random": "numpy.random.seed"}

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
#: Methods whose result is (part of) the object itself, so it aliases shared state.
_ALIAS_METHODS = frozenset({"get", "setdefault", "values", "items", "__getitem__"})
#: Process state no lock can protect: every route, the server and the OS read it.
REFUSED_STATE = {
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
SERIALISED_STATE = {
    "random": "the `random` module's generator",
    "numpy.random": "numpy's global random generator",
    "matplotlib.pyplot": "matplotlib's current figure",
    "matplotlib.use": "matplotlib's backend",
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
#: Drawing configuration (styles, themes, rc settings): the same settings on every request, read
#: only by drawing code, so neither shared state to serialise nor a reason to keep a statement.
DRAWING_CONFIGURATION = frozenset(
    {"matplotlib.style", "matplotlib.rc", "matplotlib.rcParams", "matplotlib.rcdefaults"}
    | {"matplotlib.pyplot.style", "matplotlib.pyplot.rc", "matplotlib.pyplot.rcParams"}
    | {"matplotlib.pyplot.rcdefaults", "matplotlib.pyplot.xkcd", "seaborn.set"}
    | {"seaborn.set_theme", "seaborn.set_style", "seaborn.set_context", "seaborn.set_palette"}
    | {
        "seaborn.reset_defaults",
        "seaborn.reset_orig",
        "pandas.plotting.register_matplotlib_converters",
    }
)
#: Names in those modules that make a private object rather than use the global one.
LOCAL_FACTORIES = frozenset(
    {"Random", "SystemRandom", "default_rng", "Generator", "RandomState", "SeedSequence"}
    | {"PCG64", "MT19937", "Philox", "SFC64", "BitGenerator", "catch_warnings", "Figure"}
)
SHARE_HINT = (
    'declare it in metadata.promoter.shared (e.g. "shared": ["{name}"]) to share it '
    "between requests on purpose"
)


@dataclass
class FunctionSummary:
    """What calling a function changes: setup names (through globals), its arguments, state."""

    mutated_globals: dict[str, int] = field(default_factory=dict)
    mutated_params: set[int] = field(default_factory=set)
    state: dict[str, int] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)


@dataclass
class Scan:
    notebook: Notebook
    modules: dict[str, str]
    setup: set[str]
    definitions: set[str]
    shared: set[str]
    functions: dict[str, FunctionSummary]
    self_mutators: set[str]
    aliases: dict[str, str] = field(default_factory=dict)
    writes: dict[tuple[int, int], tuple[str, Location]] = field(default_factory=dict)
    copied: dict[str, tuple[str, Location]] = field(default_factory=dict)
    serialised: dict[str, tuple[str, Location]] = field(default_factory=dict)


def location(scan: Scan, cell: Cell, node: ast.AST) -> Location:
    return scan.notebook.at(cell, getattr(node, "lineno", None))


def dotted(node: ast.AST) -> str | None:
    """``np.random.seed`` for the expression ``np.random.seed``; ``None`` if not a dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def resolve(scan: Scan, dotted: str | None) -> str | None:
    """The full module path of a dotted name whose first part is an imported module or name."""
    if dotted is None:
        return None
    first, _, rest = dotted.partition(".")
    module = scan.modules.get(first)
    if module is None:
        return None
    return f"{module}.{rest}" if rest else module


def reached_root(scan: Scan, node: ast.AST) -> str | None:
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


def strip_subscripts(node: ast.AST) -> ast.AST:
    while isinstance(node, ast.Subscript):
        node = node.value
    return node


def configures_drawing(full: str) -> bool:
    """Whether ``full`` (a dotted path) is drawing configuration (``plt.style.use``)."""
    return any(under(full, key) for key in DRAWING_CONFIGURATION)


def under(full: str, prefix: str) -> bool:
    return full == prefix or full.startswith(prefix + ".")


def refused_key(full: str, *, store: bool) -> str | None:
    """The refused state ``full`` changes: a write into it, a call of it (``os.chdir``), or
    a changing method of it (``os.environ.update``); reading (``os.environ.get``) is fine."""
    for key in REFUSED_STATE:
        if full == key or (store and under(full, key)):
            return key
        if under(full, key) and full.rsplit(".", 1)[-1] in MUTATING_METHODS:
            return key
    return None


def module_aliases(cells: list[tuple[Cell, list[ast.stmt]]]) -> dict[str, str]:
    """What each imported name stands for: ``np`` -> ``numpy``, ``seed`` -> ``random.seed``."""
    return import_aliases([stmt for _, statements in cells for stmt in statements])
