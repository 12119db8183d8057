"""The data files a notebook reads, which travel with its service.

They are observed, not guessed: the copy of the notebook that papermill runs starts with a cell
that installs a PEP 578 audit hook (``sys.addaudithook``) in the kernel. The hook sees every
``open`` event, whatever library opens the file (``pd.read_csv(path + "x.csv")``, ``np.load``,
``joblib.load``, ``Path.read_text``), and records the files opened for reading under the
notebook's project root (the nearest folder above it holding ``.git``, ``pyproject.toml`` or
``setup.cfg``, or ``metadata.promoter.root``), and relative paths that leave it; the local
modules the run imported (``localmodules``) travel too. ``metadata.promoter.files`` adds globs
for files that only other parameters read. The files are copied into the service under the
same relative layout (a notebook in ``notebooks/`` reading ``../data/x.csv`` gets
``data/x.csv``, and the service's pipeline works from its ``notebooks/`` folder). Python
sources (other than imported local modules), notebooks and hidden files (``.env``: often
secrets) are not data and are left out unless a glob names them (with shell semantics:
``conf/*`` leaves ``conf/.env`` out, ``conf/.*`` names it). Every file is confined by its real
path: a link in the project to a file elsewhere (or a glob through a linked folder) is refused,
naming the cell and line, not copied into the service. Readers written in C open files without
an audit event (pyarrow's parquet reader): the path a promoted cell passes as a string literal
to a ``read_*`` call travels too.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path

from wcmatch import glob

from promoter._exceptions import CellSyntaxError, ContractError, Location
from promoter.analysis.localmodules import local_module_files
from promoter.reading.notebook import Cell, Notebook
from promoter.reading.source import parse_cell

__all__ = [
    "OBSERVER_CELL_ID",
    "ROOT_MARKERS",
    "DataFile",
    "Observed",
    "confined",
    "data_files",
    "observed_code",
    "observer_code",
    "project_root",
]

#: The id of the injected first cell that installs the audit hook.
OBSERVER_CELL_ID = "promoter-observe-files"
_STATE = "__promoter_files__"
_IGNORED_PARTS = frozenset({"__pycache__", ".ipynb_checkpoints", ".git"})
_IGNORED_SUFFIXES = frozenset({".py", ".pyc", ".ipynb"})
# Shell globs: `**` spans folders (not linked ones), no wildcard matches a hidden name.
_GLOB_FLAGS = glob.GLOBSTAR | glob.NODIR
_ELSEWHERE = (
    "a service carries only the files under its project root (the nearest folder above the "
    "notebook holding .git, pyproject.toml or setup.cfg, or metadata.promoter.root): move the "
    "file there, or read it at run time from a mounted volume or object storage (a path or URL "
    "from a setting)"
)

# Runs in the kernel. The hook must be cheap (it sees every import) and must never raise.
# A path first opened for writing is the notebook's own output, not an input. Readers that open
# files in C without an audit event (pyarrow's parquet reader) are not seen: `_named_reads` reads
# their literal paths from the source, and a `files` glob names the others.
_OBSERVER = """\
# Injected by promoter: record the data files the notebook reads (not part of the notebook).
def __promoter_observe__():
    import os, sys
    root = ROOT
    prefix = os.path.join(root, "")
    real_prefix = os.path.join(os.path.realpath(root), "")
    # Installed packages read their own files (fonts, time zones): a venv inside the project
    # is not the notebook's data.
    installed = tuple(
        os.path.join(os.path.realpath(p), "")
        for p in {sys.prefix, sys.exec_prefix, *(p for p in sys.path if "-packages" in p)}
    )
    creates = os.O_CREAT | os.O_TRUNC | os.O_APPEND
    seen, outside, lines = {}, {}, {}
    shell = get_ipython()  # its execution_count is already the next cell's while a cell runs

    def line():  # the line of the running cell (its code is a <module> in ipykernel's folder)
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            cell = os.path.basename(os.path.dirname(name)).startswith("ipykernel_")
            if frame.f_code.co_name == "<module>" and (cell or name.startswith("<ipython")):
                return frame.f_lineno
            frame = frame.f_back
        return None

    def hook(event, args):
        if event == "open":
            flags = args[2] or 0
        elif event == "sqlite3.connect":  # SQLite opens its file in C, without an open event
            flags = 0
        else:
            return
        if isinstance(args[0], int):
            return
        try:
            given = os.fsdecode(args[0])
            joined = os.path.join(os.getcwd(), given)
            full = os.path.normpath(joined)
            if os.path.realpath(full).startswith(installed):
                return
            reading = flags & os.O_ACCMODE != os.O_WRONLY and not flags & creates
            # A link out of the folder: its contents are elsewhere. `link/../x` is the parent
            # of the link's target, not `x` in the folder: refused as written.
            inside = full.startswith(prefix)
            leaves = reading and inside and not os.path.realpath(joined).startswith(real_prefix)
            climbs = leaves and os.path.realpath(full).startswith(real_prefix)
            rel = os.path.relpath(full, root)
            if inside and not climbs and rel not in seen:
                seen[rel] = (reading, shell.execution_count - 1, os.path.isabs(given), leaves)
                lines[rel] = line()
            elif reading and (climbs or not inside) and given not in outside:
                if climbs or not os.path.isabs(given):
                    outside[given] = shell.execution_count - 1
                    lines[given] = line()
        except Exception:
            pass

    def modules():  # local modules the run imported (their files, relative to the root)
        found = {}
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            real = os.path.realpath(file) if isinstance(file, str) else ""
            if real.startswith(real_prefix) and not real.startswith(installed):
                found[os.path.relpath(real, os.path.realpath(root))] = None
        return found

    sys.addaudithook(hook)
    return seen, outside, lines, modules


STATE = __promoter_observe__()
del __promoter_observe__
""".replace("STATE", _STATE)


def observer_code(root: Path) -> str:
    """The source of the injected first cell that installs the audit hook.

    Args:
        root: The notebook's project root (:func:`project_root`): the files under it are seen.
    """
    return _OBSERVER.replace("ROOT", repr(str(root)))


#: What marks a project's root folder (the nearest one above the notebook holding one).
ROOT_MARKERS = (".git", "pyproject.toml", "setup.cfg")


def project_root(notebook: Notebook) -> Path:
    """The folder that bounds what travels: ``metadata.promoter.root``, else the nearest
    folder above the notebook holding ``.git``, ``pyproject.toml`` or ``setup.cfg``, else the
    notebook's own folder (real paths, symlinks resolved)."""
    folder = notebook.path.parent.resolve()
    if notebook.settings.root is not None:
        return (folder / notebook.settings.root).resolve()
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate
    return folder


def observed_code() -> str:
    """An expression (in the kernel) of what was observed: JSON-native data for the capture."""
    seen = f"{_STATE}[0].items()"
    return (
        f"{{'read': {{p: c for p, (r, c, a, o) in {seen} if r}}, "
        f"'absolute': {{p: c for p, (r, c, a, o) in {seen} if r and a}}, "
        f"'links': {{p: c for p, (r, c, a, o) in {seen} if o}}, "
        f"'outside': dict({_STATE}[1]), 'lines': dict({_STATE}[2]), "
        f"'modules': {_STATE}[3]()}}"
    )


@dataclass(frozen=True)
class Observed:
    """What the audit hook saw: paths, each with the index of the cell that first opened it.

    Attributes:
        read: Files under the project root opened for reading (POSIX paths relative to it).
        outside: Relative paths read that lead outside the project root, as written.
        absolute: Those of ``read`` the notebook opened by an absolute path.
        links: Those of ``read`` whose real path (links resolved) leaves the folder.
        lines: The line of its cell at which each path (of any kind) was first opened.
        modules: Local modules the run imported (files under the project root, not installed).
    """

    read: dict[str, int | None] = field(default_factory=dict)
    outside: dict[str, int | None] = field(default_factory=dict)
    absolute: dict[str, int | None] = field(default_factory=dict)
    links: dict[str, int | None] = field(default_factory=dict)
    lines: dict[str, int | None] = field(default_factory=dict)
    modules: dict[str, int | None] = field(default_factory=dict)

    def merged(self, other: Observed) -> Observed:
        """Both runs' observations (another parameter set may read other files)."""
        return Observed(
            {**other.read, **self.read},
            {**other.outside, **self.outside},
            {**other.absolute, **self.absolute},
            {**other.links, **self.links},
            {**other.lines, **self.lines},
            {**other.modules, **self.modules},
        )


@dataclass(frozen=True)
class DataFile:
    """One file that travels with the service.

    Attributes:
        path: Where it is in the service folder (POSIX), in the project's layout.
        source: The file on disk (its real path: no link in it).
        size: Its size in bytes.
    """

    path: str
    source: Path
    size: int


def data_files(
    notebook: Notebook, observed: Observed
) -> tuple[tuple[DataFile, ...], list[tuple[str, Location]], str]:
    """The data files of ``notebook``: those its run read, plus its ``files`` globs.

    Every file is confined to the project root by its real path (a link out is refused, as a
    relative path that leaves the root is). The files keep their layout relative to the
    notebook: ``notebooks/`` reading ``../data/x.csv`` gets ``data/x.csv`` in the service.

    Args:
        notebook: The notebook (its project root bounds what travels).
        observed: What the run read (paths relative to the project root).

    Returns:
        The files, sorted by path (relative to the service folder), warnings with their places,
        and the pipeline's working folder there (``.``, or ``notebooks`` in the example).

    Raises:
        ContractError: A file is outside the project root (by path or by link), too large, or
            a glob matches nothing.
    """
    root = project_root(notebook)
    observed = observed.merged(_named_reads(notebook, root))
    if observed.outside:
        given, cell_index = next(iter(observed.outside.items()))
        raise ContractError(
            f"the notebook reads {given!r}, which is outside its folder and its project "
            f"root {root}",
            location=_where(notebook, observed, given, cell_index),
            hint=_ELSEWHERE,
        )
    found: dict[str, tuple[Path, int | None]] = {}
    for rel, cell_index in observed.read.items():
        source = root / rel
        if _travels(rel) and (rel in observed.links or source.is_file()):
            found.setdefault(Path(rel).as_posix(), (source, cell_index))
            where = _where(notebook, observed, rel, cell_index)
            confined(notebook, rel, source, where, leaves=rel in observed.links)
    for rel in local_module_files(root, observed.modules):
        found.setdefault(rel, (root / rel, None))
    folder = notebook.path.parent.resolve()
    for rel, source in _globbed(notebook, folder):
        found.setdefault((folder / rel).relative_to(root).as_posix(), (source, None))
    base = _base(root, folder, list(found))
    files = tuple(
        _sized(notebook, (root / rel).relative_to(base).as_posix(), source.resolve(), cell)
        for rel, (source, cell) in sorted(found.items())
    )
    warnings = [
        (
            f"the notebook opens {rel} by an absolute path: the service copies it and runs in "
            "its own folder, so a path built from os.getcwd() works there, but one written out "
            "names a place its image or another machine does not have; use a path relative "
            "to the notebook's folder",
            _where(notebook, observed, rel, cell_index),
        )
        for rel, cell_index in observed.absolute.items()
        if Path(rel).as_posix() in found and _travels(rel)  # not an import of a local module
    ]
    return files, warnings, folder.relative_to(base).as_posix()


def _base(root: Path, folder: Path, paths: list[str]) -> Path:
    """The deepest folder holding the notebook's folder and every file (within ``root``)."""
    base = folder
    for rel in paths:
        parent = (root / rel).parent
        while not parent.is_relative_to(base):
            base = base.parent
    return base


def confined(
    notebook: Notebook,
    rel: str,
    source: Path,
    where: Location | None = None,
    *,
    leaves: bool = False,
) -> Path:
    """The real path of ``source``, refused when it leaves the notebook's project root.

    Args:
        notebook: The notebook whose project root confines its data files.
        rel: The file as the notebook names it (relative to the project root).
        source: The file on disk, perhaps through links.
        where: Where the notebook reads it (else the notebook).
        leaves: The run saw it read through a link out of the folder (it may be gone since).

    Returns:
        The resolved path, inside the folder.

    Raises:
        ContractError: ``source`` or a folder on its way is a link that leads out.
    """
    root = project_root(notebook)
    real = source.resolve()
    if leaves or not real.is_relative_to(root):
        raise ContractError(
            f"the data file {rel} is a link to {real}, outside the notebook's project root "
            f"{root}: "
            "its contents would be copied into the service and its image",
            location=where or notebook.at(),
            hint="copy the file into the project instead of linking to it, or "
            "read it at run time from a mounted volume or object storage (a path or URL "
            "from a setting)",
        )
    return real


def _where(notebook: Notebook, observed: Observed, path: str, index: int | None) -> Location:
    return notebook.at(_cell(notebook, index), observed.lines.get(path))


def _named_reads(notebook: Notebook, root: Path) -> Observed:
    """Files a promoted cell names as a string literal to a ``read_*``/``scan_*`` call.

    Readers written in C open their files without an audit event (pyarrow's parquet and
    feather readers, polars), so ``pd.read_parquet("data/x.parquet")`` is read from the source.
    """
    folder = notebook.path.parent.resolve()
    found = Observed()
    for cell in notebook.cells:
        if cell.cell_type != "code" or not cell.promoted:
            continue
        try:
            tree = parse_cell(notebook, cell)[1]
        except CellSyntaxError:
            continue  # reported where the cell is compiled
        for given, line in _reader_literals(tree):
            if Path(given).is_absolute():
                continue  # as in the run: absolute paths outside the folder are the machine's
            try:
                if not (folder / given).is_file():
                    continue
                leaves = not (folder / given).resolve().is_relative_to(root)
            except (OSError, ValueError):
                continue
            lexical = Path(os.path.normpath(folder / given))
            if not lexical.is_relative_to(root):
                found.outside.setdefault(given, cell.index)
                found.lines.setdefault(given, line)
                continue
            rel = lexical.relative_to(root).as_posix()  # as the service will open it
            found.read.setdefault(rel, cell.index)
            found.lines.setdefault(rel, line)
            if leaves:
                found.links.setdefault(rel, cell.index)
    return found


def _reader_literals(tree: ast.Module) -> list[tuple[str, int]]:
    """The string literals passed first to a call named ``read_*`` or ``scan_*``, with lines."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        literal = first.value if isinstance(first, ast.Constant) else None
        if name.startswith(("read_", "scan_")) and isinstance(literal, str):
            found.append((literal, node.lineno))
    return found


def _sized(notebook: Notebook, rel: str, source: Path, cell_index: int | None) -> DataFile:
    size = source.stat().st_size
    limit = notebook.settings.max_file_mb
    if size > limit * 1024 * 1024:
        raise ContractError(
            f"the data file {rel} is {size / 1048576:.0f} MB, over the {limit:g} MB a service "
            "carries",
            location=notebook.at(_cell(notebook, cell_index)),
            hint="read it at run time from a mounted volume or object storage, or raise "
            "metadata.promoter.max_file_mb",
        )
    return DataFile(rel, source, size)


def _travels(rel: str) -> bool:
    # Hidden files are configuration, often secret (python-dotenv reads `.env` from the
    # notebook's folder): they travel only when a `files` glob names them.
    path = Path(rel)
    hidden = any(part.startswith(".") for part in path.parts)
    return not (hidden or _IGNORED_PARTS & set(path.parts) or path.suffix in _IGNORED_SUFFIXES)


def _globbed(notebook: Notebook, root: Path) -> list[tuple[str, Path]]:
    """The files each ``files`` glob names, with shell semantics (wcmatch).

    ``*`` and ``**`` match no hidden name (``conf/*`` leaves ``conf/.env`` out; ``conf/.*``
    names it), and ``**`` does not descend into linked folders; a hit whose real path leaves
    the folder (through a linked folder or file) is refused.
    """
    matches = []
    for pattern in notebook.settings.files:
        hits = [
            root / hit
            for hit in sorted(glob.glob(pattern, flags=_GLOB_FLAGS, root_dir=root))
            if (root / hit).is_file()
        ]
        hits = [p for p in hits if p.resolve() != notebook.path.resolve()]
        if not hits:
            raise ContractError(
                f"metadata.promoter.files glob {pattern!r} matches no file",
                location=notebook.at(),
                hint=f"globs are relative to the notebook's folder {root}; `*` and `**` "
                "match no hidden name (write `conf/.*` to name one)",
            )
        for hit in hits:
            rel = hit.relative_to(root).as_posix()
            confined(notebook, f"{rel} (from the files glob {pattern!r})", hit)
            matches.append((rel, hit))
    return matches


def _cell(notebook: Notebook, index: int | None) -> Cell | None:
    return next((c for c in notebook.cells if c.index == index), None)
