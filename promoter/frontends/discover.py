"""Find what ``promoter check`` checks: notebooks under the given paths, and generated services.

Folders are searched recursively; hidden folders, virtual environments, ``node_modules`` and
``build`` never are. Excludes are gitignore-style patterns, matched with pathspec (the library
behind many tools' ``.gitignore`` support) against paths relative to the searched folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from promoter._exceptions import UsageError

__all__ = [
    "IGNORED_DIRS",
    "PROMOTER_TAGS",
    "ServiceIndex",
    "find_notebooks",
    "find_services",
    "git_root",
    "has_promoter_tags",
]

#: Folders never searched for notebooks or services (besides hidden ones).
IGNORED_DIRS = frozenset({".ipynb_checkpoints", ".venv", "venv", "node_modules", "build"})
#: Tags that make a notebook one ``check`` looks at when it scans a folder. ``parameters`` alone
#: is papermill's tag, used by many notebooks that are not meant to become services.
PROMOTER_TAGS = frozenset({"setup", "response", "skip"})


def find_notebooks(
    paths: Sequence[str | Path], exclude: Sequence[str] = ()
) -> list[tuple[Path, bool]]:
    """The notebooks to check: named files, and ``*.ipynb`` found recursively in folders.

    Args:
        paths: Notebooks or folders.
        exclude: gitignore-style globs: a pattern without ``/`` matches any file or folder
            name; one with ``/`` matches the path relative to the searched folder (or to the
            working folder for named files); a trailing ``/`` matches folders only.

    Returns:
        ``(path, named)`` pairs, sorted within each folder; ``named`` is true for files named
        explicitly (checked even without promoter tags).

    Raises:
        UsageError: A path does not exist, or is a file that is not a notebook.
    """
    spec = _spec(exclude)
    found: list[tuple[Path, bool]] = []
    seen: set[Path] = set()
    for raw in paths:
        for candidate, named in _candidates(Path(raw), spec):
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append((candidate, named))
    return found


def _spec(patterns: Sequence[str]) -> Any:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines([p.strip() for p in patterns if p.strip()])


def _candidates(path: Path, spec: Any) -> list[tuple[Path, bool]]:
    if path.is_dir():
        return [(p, False) for p in _walk_notebooks(path, spec)]
    if not path.is_file():
        from promoter.reading.notebook import missing_path_hint

        raise UsageError(f"no such file or folder: {path}", hint=missing_path_hint(path))
    if path.suffix != ".ipynb":
        raise UsageError(f"{path} is not a notebook (.ipynb)", hint="pass notebooks or folders")
    relative = Path(os.path.relpath(path.resolve())).as_posix()
    return [] if spec.match_file(relative) else [(path, True)]


def _walk_notebooks(root: Path, spec: Any) -> Iterable[Path]:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        rel = PurePosixPath(here.relative_to(root).as_posix())
        dirs[:] = sorted(
            d for d in dirs if not _ignored_dir(d) and not spec.match_file(f"{rel / d}/")
        )
        for name in sorted(files):
            if name.endswith(".ipynb") and not spec.match_file(str(rel / name)):
                yield here / name


def _ignored_dir(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_DIRS


def has_promoter_tags(path: Path) -> bool:
    """Whether any cell carries a promoter tag (or the notebook has ``metadata.promoter``).

    Papermill's ``parameters`` tag alone does not count (DESIGN.md section 6). A file that
    cannot be parsed counts as tagged: the check then reports why it is broken.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if "promoter" in data.get("metadata", {}):
            return True
        cells = data.get("cells")
        if cells is None:  # nbformat 3 keeps its cells in worksheets
            cells = [c for ws in data.get("worksheets", []) for c in ws.get("cells", [])]
        tags = {t for c in cells for t in c.get("metadata", {}).get("tags", [])}
    except (OSError, ValueError, AttributeError, TypeError):
        return True
    return bool(tags & PROMOTER_TAGS)


@dataclass(frozen=True)
class ServiceIndex:
    """Generated services found on disk, by the resolved path of each source notebook."""

    services: dict[Path, list[tuple[Path, Any]]] = field(default_factory=dict)
    #: The notebooks (resolved) whose services carry each data file (resolved).
    readers: dict[Path, set[Path]] = field(default_factory=dict)

    def for_notebook(self, path: Path) -> list[tuple[Path, Any]]:
        """``(service folder, lock)`` for each service generated from ``path``."""
        return self.services.get(path.resolve(), [])

    def changed(self, paths: Iterable[str | Path]) -> list[Path]:
        """The notebooks to check when ``paths`` changed (what pre-commit passes a hook).

        A notebook is its own; a data file a service carries stands for the notebooks that
        read it; other files (and deleted ones) stand for nothing.
        """
        found: dict[Path, None] = {}
        for raw in paths:
            path = Path(raw)
            if path.suffix == ".ipynb" and path.is_file():
                found[path] = None
            for reader in sorted(self.readers.get(path.resolve(), ())):
                found[_shown(reader)] = None
        return list(found)


def _shown(path: Path) -> Path:
    """``path`` relative to the working folder when inside it (as a user would name it)."""
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def find_services(roots: Iterable[str | Path]) -> ServiceIndex:
    """Find every ``promoter.lock.json`` under ``roots`` and the git repositories holding them.

    Named folders are searched, the git repository holding each named path, and a named
    notebook's own folder with its direct subfolders.

    Hidden folders, virtual environments, ``node_modules`` and ``build`` are not searched.
    """
    roots = list(roots)
    searched: set[Path] = set()
    index = ServiceIndex()
    for root in _search_roots(roots):
        for folder, dirs, files in os.walk(root):
            here = Path(folder).resolve()
            if here in searched:
                dirs[:] = []
                continue
            searched.add(here)
            dirs[:] = sorted(d for d in dirs if not _ignored_dir(d))
            _index_lock(here, files, index)
    for beside in _beside_named_notebooks(roots):
        if beside not in searched:
            searched.add(beside)
            _index_lock(beside, os.listdir(beside), index)
    return index


def _beside_named_notebooks(roots: Iterable[str | Path]) -> list[Path]:
    """A named notebook's folder and its direct subfolders: where ``convert -o`` puts a service.

    Outside a git repository nothing else would find them (a named file's folder is not
    walked), and ``check NB --static`` reported no drift where ``check FOLDER`` did.
    """
    folders: list[Path] = []
    for raw in roots:
        path = Path(raw).resolve()
        if path.is_file():
            folder = path.parent
            subfolders = sorted(d for d in folder.iterdir() if d.is_dir())
            folders += [folder, *(d for d in subfolders if not _ignored_dir(d.name))]
    return folders


def _index_lock(folder: Path, files: list[str], index: ServiceIndex) -> None:
    from promoter.building.output import LOCK_NAME, read_lock

    lock = read_lock(folder) if LOCK_NAME in files else None
    for entry in lock.notebooks if lock is not None else []:
        source = (folder / str(entry.get("path", ""))).resolve()
        index.services.setdefault(source, []).append((folder, lock))
        data = entry.get("data")
        for rel in data if isinstance(data, dict) else ():
            index.readers.setdefault((folder / str(rel)).resolve(), set()).add(source)


def _search_roots(paths: Iterable[str | Path]) -> list[Path]:
    roots: list[Path] = []
    for raw in paths:
        path = Path(raw).resolve()
        folder = path if path.is_dir() else path.parent
        # A named folder is searched; a named file's folder only through its repository, so
        # checking ~/nb.ipynb outside any repository does not walk the home folder.
        for candidate in (folder if path.is_dir() else None, git_root(folder)):
            if candidate is not None and candidate not in roots:
                roots.append(candidate)
    # Search the widest roots first so nested ones are skipped as already searched.
    return sorted(roots, key=lambda p: len(p.parts))


def git_root(folder: Path) -> Path | None:
    """The top folder of the git repository holding ``folder``, if any."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None
