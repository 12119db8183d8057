"""One rule for non-determinism, the same in ``convert`` and ``check``.

Every build runs the notebook twice with its defaults: once in the kernel (papermill, the
inspection) and once as the generated service in a fresh process (``_verify``). The rule
(``judge``) reads the two answers:

- the service's answer must fit the response model (its *shape*): otherwise the declared model
  is false, and the build fails;
- when the values differ, the notebook is not deterministic: a warning names the cells with
  unseeded randomness that can be found statically (``unseeded_randomness``), the generated
  golden test checks the answer's shape only, and ``strict`` makes it a failure.

The static scan follows the promoted cells in order and reports a random draw with no seed call
before it: ``np.random.*`` (and ``default_rng()``/``RandomState()`` without a seed), the ``random``
module, scikit-learn estimators and splitters called without ``random_state`` (``np.random.seed``
seeds those too).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from promoter._exceptions import Location, PromoterError, VerificationError
from promoter.reading.notebook import Notebook
from promoter.reading.source import parse_cell

if TYPE_CHECKING:
    from promoter.building.verify import Fidelity

__all__ = ["judge", "unseeded_randomness"]

_SEEDS = {
    "numpy.random.seed": "numpy",
    "random.seed": "random",
    "torch.manual_seed": "numpy",  # usually seeded together; do not flag numpy after it
}
_SEEDED_WITH_ARGUMENT = {
    "numpy.random.default_rng",
    "numpy.random.RandomState",
    "numpy.random.Generator",
    "random.Random",
}
_NOT_DRAWS = {"numpy.random.seed", "random.seed", "numpy.random.get_state", "random.getstate"}
_SKLEARN_RANDOM = (
    "RandomForest",
    "ExtraTree",
    "GradientBoosting",
    "HistGradientBoosting",
    "DecisionTree",
    "KMeans",
    "MLP",
    "SGD",
    "IsolationForest",
    "TSNE",
    "Bagging",
    "AdaBoost",
    "ShuffleSplit",
    "RandomizedSearchCV",
    "NMF",
    "LatentDirichletAllocation",
    "TruncatedSVD",
    "GaussianMixture",
    "Perceptron",
    "train_test_split",
    "make_classification",
    "make_regression",
    "make_blobs",
    "make_moons",
    "make_circles",
)


def judge(notebook: Notebook, fidelity: Fidelity, *, strict: bool) -> list[tuple[str, Location]]:
    """Apply the rule to one notebook's two default runs.

    Args:
        notebook: The notebook.
        fidelity: The service's answer compared with the notebook's.
        strict: Fail on a non-deterministic answer instead of warning.

    Returns:
        The warnings (empty when the answers are equal).

    Raises:
        VerificationError: The service's answer does not fit the response model, or it
            differs from the notebook's and ``strict`` is set.
    """
    where = notebook.at(notebook.response_cell)
    if fidelity.model_error is not None:
        problem = " ".join(fidelity.model_error.split())[:300]
        raise VerificationError(
            f"the service's answer does not fit its response model: {problem}",
            location=where,
            hint="list the object's JSON path in metadata.promoter.maps or records, or add "
            "parameter sets to metadata.promoter.examples",
        )
    if fidelity.matches:
        return []
    found = unseeded_randomness(notebook)
    changes = f"the answer changes from run to run with the same parameters ({fidelity.difference})"
    if strict:
        draws = "; ".join(f"{_short(loc)}: {what}" for what, loc in found)
        raise VerificationError(
            f"{changes}; " + (f"unseeded randomness in {draws}" if found else _NOTHING_FOUND),
            location=found[0][1] if found else where,
            hint="seed the random generators (np.random.seed, random.seed, random_state=...), "
            "or drop --strict to accept answers that agree in shape",
        )
    cells = sorted({loc.cell_number for _, loc in found if loc.cell_number is not None})
    named = ", ".join(f"cell {c}" for c in cells)  # numbered from 1, as every location is
    likely = f"{len(found)} unseeded random draw(s) in {named}" if found else _NOTHING_FOUND
    message = f"{changes}; {likely}; its shape fits the response model, so the golden test "
    message += "checks the shape only (--strict makes this an error)"
    return [(message, where)] + [(f"unseeded randomness: {w}", loc) for w, loc in found]


_NOTHING_FOUND = "no unseeded randomness found: it may read the clock, files or changing state"


def _short(location: Location) -> str:
    """``cell 3 (id x), line 2``: the location without the notebook's path."""
    return str(Location(None, location.cell_index, location.cell_id, location.line))


def unseeded_randomness(notebook: Notebook) -> list[tuple[str, Location]]:
    """Random draws in the promoted cells with no seed before them, in order.

    Returns:
        ``(what, location)`` per draw found, e.g. ``("`np.random.rand` without a seed before
        it", cell 3 line 2)``.
    """
    scan = _Scan()
    for cell in notebook.cells:
        if not cell.promoted:
            continue
        try:
            _, tree = parse_cell(notebook, cell)
        except PromoterError:
            continue
        for what, line in scan.cell(tree):
            scan.found.append((what, notebook.at(cell, line)))
    return scan.found


@dataclass
class _Scan:
    """The imports and seeds seen so far, across cells in order."""

    aliases: dict[str, str] = field(default_factory=dict)
    seeded: set[str] = field(default_factory=set)
    found: list[tuple[str, Location]] = field(default_factory=list)

    def cell(self, tree: ast.Module) -> list[tuple[str, int]]:
        hits = []
        for node in _in_order(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                self._imports(node)
            elif isinstance(node, ast.Call):
                what = self._draw(node)
                if what is not None:
                    hits.append((what, node.lineno))
        return hits

    def _imports(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if isinstance(node, ast.Import):
                self.aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
            elif node.module:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _draw(self, call: ast.Call) -> str | None:
        name = self._qualified(call.func)
        if name is None:
            return None
        if name in _SEEDS:
            self.seeded.add(_SEEDS[name])
            return None
        shown = f"`{ast.unparse(call.func)}`"
        if name in _SEEDED_WITH_ARGUMENT:
            seeded = bool(call.args) or any(k.arg in ("seed", "x") for k in call.keywords)
            return None if seeded else f"{shown} without a seed"
        if name in _NOT_DRAWS:
            return None
        module = "numpy" if name.startswith("numpy.random.") else name.split(".")[0]
        draw = name.startswith(("numpy.random.", "random."))
        if draw and module not in self.seeded:
            return f"{shown} without a seed before it"
        if name.startswith("sklearn.") and "numpy" not in self.seeded:
            last = name.rsplit(".", 1)[-1]
            given = {k.arg: k.value for k in call.keywords}
            unseeded = "random_state" not in given or (
                isinstance(given["random_state"], ast.Constant)
                and given["random_state"].value is None
            )
            if unseeded and any(p in last for p in _SKLEARN_RANDOM):
                return f"{shown} without random_state"
        return None

    def _qualified(self, node: ast.expr) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.aliases:
            return None
        return ".".join([self.aliases[node.id], *reversed(parts)])


def _in_order(tree: ast.Module) -> list[ast.AST]:
    """Every node, sorted by position (seed calls before the draws after them)."""
    nodes = [n for n in ast.walk(tree) if hasattr(n, "lineno")]
    return sorted(nodes, key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
