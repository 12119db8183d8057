"""Local modules and packages: the project's own code the promoted cells imported, which travels.

The run records every module it imported whose file is under the project root and not in an
installed package (``files``' observer, from ``sys.modules``): ``from helpers import *`` next
to the notebook, or ``from mylib.features import scale`` with ``mylib/`` beside it. Each
module's file travels with the service in the same layout; a package travels whole (every
``.py`` file under its top folder, so a submodule imported only at request time is there too).
Their own imports of third-party modules are pinned like the notebook's.
"""

from __future__ import annotations

import ast
import contextlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

__all__ = ["local_module_files", "local_module_imports"]

_SKIPPED_PARTS = frozenset({"__pycache__", ".ipynb_checkpoints", ".git"})


def local_module_files(root: Path, imported: Mapping[str, object]) -> list[str]:
    """The files (relative to ``root``, POSIX) of the local modules the run imported.

    Args:
        root: The project root.
        imported: Module files the run imported, relative to ``root``.
    """
    found: set[str] = set()
    for rel in imported:
        path = PurePosixPath(Path(rel).as_posix())
        if path.suffix != ".py" or _SKIPPED_PARTS & set(path.parts):
            continue  # compiled extensions and caches are built, not carried
        top = _package_top(root, path)
        if top is None:
            found.add(path.as_posix())
            continue
        for source in sorted((root / top).rglob("*.py")):
            inner = source.relative_to(root)
            if not _SKIPPED_PARTS & set(inner.parts) and source.is_file():
                found.add(inner.as_posix())
    return sorted(found)


def _package_top(root: Path, path: PurePosixPath) -> PurePosixPath | None:
    """The top folder of the package ``path`` belongs to (``None``: a lone module)."""
    top = None
    folder = path.parent
    while folder != PurePosixPath(".") and (root / folder / "__init__.py").is_file():
        top, folder = folder, folder.parent
    return top


def local_module_imports(sources: Iterable[Path], modules: Iterable[str]) -> tuple[str, ...]:
    """The top-level modules to pin: ``modules`` (the notebook's imports) without the local
    ones, plus the third-party modules the local module files ``sources`` import."""
    sources = [s for s in sources if s.suffix == ".py"]
    own = {s.stem for s in sources} | {s.parent.name for s in sources if s.name == "__init__.py"}
    found = set(modules)
    for source in sources:
        tree = None
        with contextlib.suppress(OSError, SyntaxError, ValueError):
            tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return tuple(sorted(m for m in found - own if m not in sys.stdlib_module_names))
