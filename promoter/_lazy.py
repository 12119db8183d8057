"""Keep an optional dependency of jsonschema from costing a second and a half per start-up.

``import nbformat`` imports jsonschema, which imports ``rfc3987_syntax`` when it is installed
(Jupyter brings it in, through ``jsonschema[format-nongpl]``) just to offer an "iri" format
check; that package builds its Lark grammars at import, ~1.5 s here. No notebook schema uses the
format, so the import is deferred to the first real use: the stand-in module below loads the
real package on first use and from then on is replaced by it, so behaviour is unchanged.

Why a ``sys.modules`` stand-in and not something tidier (measured: ``import nbformat`` takes
1.50 s without it, 0.23 s with it; ``promoter inspect --static`` of 500 cells must stay under
0.5 s, and the JupyterLab role labels call it on every edit):

- ``importlib.util.LazyLoader`` defers a module until its first attribute access, but
  jsonschema's ``from rfc3987_syntax import is_valid_syntax`` is such an access, at import.
- Blocking the module (``sys.modules[name] = None``) would drop jsonschema's "iri" checker for
  every library in the process; the Jupyter server validates its event schemas with the same
  jsonschema. The stand-in keeps the checker and loads the grammar if anything uses it.
- ``NBFORMAT_VALIDATOR=fastjsonschema`` still imports jsonschema (``nbformat.json_compat``).
- Uninstalling rfc3987-syntax is not ours to decide: JupyterLab's dependencies bring it in.

The stand-in is installed only while nothing has imported jsonschema, so it never replaces a
module another library already holds.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

__all__ = ["defer_iri_grammar"]

_NAME = "rfc3987_syntax"


class _Deferred(types.ModuleType):
    """Stands in for ``rfc3987_syntax`` until something really uses it."""

    def is_valid_syntax(self, term: str, value: str) -> bool:
        # jsonschema binds this name at import time (`from rfc3987_syntax import ...`).
        return bool(_load().is_valid_syntax(term, value))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system probes `__path__` and friends
            raise AttributeError(name)
        return getattr(_load(), name)


def _load() -> types.ModuleType:
    if isinstance(sys.modules.get(_NAME), _Deferred):
        del sys.modules[_NAME]
    return importlib.import_module(_NAME)


def defer_iri_grammar() -> None:
    """Install the stand-in, unless jsonschema or the package is already imported."""
    if "jsonschema" in sys.modules or _NAME in sys.modules:
        return
    try:
        installed = importlib.util.find_spec(_NAME) is not None
    except (ImportError, ValueError):
        installed = False
    if installed:
        sys.modules[_NAME] = _Deferred(_NAME)
