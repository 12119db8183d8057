"""Keep an optional dependency of jsonschema from costing a second and a half per start-up.

``import nbformat`` imports jsonschema, which imports ``rfc3987_syntax`` when it is installed
(Jupyter brings it in, through ``jsonschema[format-nongpl]``) just to offer an "iri" format
check; that package builds its Lark grammars at import, ~1.5 s here. No notebook schema uses the
format, so the import is deferred to the first real use: the stand-in module below loads the
real package on first use and from then on is replaced by it, so behaviour is unchanged.
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
