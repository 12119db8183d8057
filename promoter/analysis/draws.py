"""Draws from the global random generators, in any library.

``random.*`` and ``numpy.random.*`` draw from a process-global generator, and so do the
libraries that use NumPy's when given no generator of their own: pandas' ``.sample(...)``
without ``random_state``, scikit-learn estimators and splitters with ``random_state=None``.
``isolation`` serialises a route that draws (and restores the state the setup cells left), and
extraction keeps the draws of a statement it drops (``df.sample(5)`` as a look,
``plt.hist(np.random.randn(100))``): dropping them would shift every later draw, and the
service would answer other values than the notebook.
"""

from __future__ import annotations

import ast

__all__ = ["SKLEARN_RANDOM", "draws", "global_draws", "import_aliases", "qualified"]

#: What a name in these modules makes or does without drawing.
_NOT_DRAWS = frozenset(
    {"seed", "get_state", "set_state", "getstate", "setstate", "default_rng", "RandomState"}
    | {"Generator", "Random", "SystemRandom", "SeedSequence", "PCG64", "MT19937", "Philox"}
    | {"SFC64", "BitGenerator", "get_bit_generator", "set_bit_generator"}
)
#: scikit-learn names (prefixes of class and function names) that draw when not given a seed.
SKLEARN_RANDOM = (
    *("RandomForest", "ExtraTree", "GradientBoosting", "HistGradientBoosting", "DecisionTree"),
    *("KMeans", "MiniBatchKMeans", "MLP", "SGD", "IsolationForest", "TSNE", "Bagging"),
    *("AdaBoost", "ShuffleSplit", "RandomizedSearchCV", "NMF", "LatentDirichletAllocation"),
    *("TruncatedSVD", "GaussianMixture", "Perceptron", "train_test_split", "shuffle"),
    *("make_classification", "make_regression", "make_blobs", "make_moons", "make_circles"),
)


def import_aliases(statements: list[ast.stmt]) -> dict[str, str]:
    """What each imported name stands for: ``np`` -> ``numpy``, ``rand`` -> ``random.rand``."""
    found: dict[str, str] = {}
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


def qualified(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """``numpy.random.rand`` for ``np.random.rand``; ``None`` if not rooted in an import."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def global_draws(node: ast.AST, aliases: dict[str, str]) -> list[ast.Call]:
    """The calls in ``node`` that draw from a global generator, outermost first."""
    found: list[ast.Call] = []
    inside: set[int] = set()
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Call) or id(sub) in inside:
            continue
        if draws(sub, aliases):
            found.append(sub)
            inside |= {id(n) for n in ast.walk(sub) if n is not sub}
    return found


def draws(call: ast.Call, aliases: dict[str, str]) -> bool:
    """Whether ``call`` draws from the ``random`` or NumPy global generator."""
    name = qualified(call.func, aliases)
    seeded = any(
        k.arg == "random_state"
        and not (isinstance(k.value, ast.Constant) and k.value.value is None)
        for k in call.keywords
    )
    if name is not None:
        last = name.rsplit(".", 1)[-1]
        if name.startswith(("numpy.random.", "random.")):
            return last not in _NOT_DRAWS
        if name.startswith("sklearn."):
            return not seeded and last.startswith(SKLEARN_RANDOM)
        return False
    # pandas' `df.sample(n)` (a method: its object is no imported module).
    method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    return method == "sample" and not seeded


def _none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None
