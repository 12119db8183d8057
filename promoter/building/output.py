"""Write the service folder atomically, and never over a file the user edited.

The folder is built next to its destination, then swapped in with one atomic ``renameat2``
exchange (falling back to two renames where the call is missing): an interrupted conversion
leaves the old service or the new one, never a mix. ``promoter.lock.json`` records the hash of
every generated file, so a later conversion can tell which files the user changed. What the user
added is carried over as it was: files, empty folders, and symbolic links as links (never
followed); a generated file or folder the user replaced by a link is refused, never read or
written through.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from promoter._exceptions import EditedFileError, OutputError

__all__ = [
    "LOCK_NAME",
    "Lock",
    "Staging",
    "check_destination",
    "edited_files",
    "read_lock",
    "sha256",
    "staged",
]

LOCK_NAME = "promoter.lock.json"
_RENAME_EXCHANGE = 2
_CACHES = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"})
_AT_FDCWD = -100


@dataclass(frozen=True)
class Lock:
    """The contents of ``promoter.lock.json``."""

    promoter_version: str
    notebooks: list[dict[str, Any]]
    files: dict[str, str]

    def to_json(self) -> str:
        """Serialise the lock, keys sorted so regenerating an unchanged service is a no-op."""
        data = {
            "promoter_version": self.promoter_version,
            "notebooks": self.notebooks,
            "files": dict(sorted(self.files.items())),
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_lock(folder: Path) -> Lock | None:
    """The lock of a generated service folder, or ``None`` when there is none (or it is bad)."""
    try:
        data = json.loads((folder / LOCK_NAME).read_text(encoding="utf-8"))
        return Lock(data["promoter_version"], list(data["notebooks"]), dict(data["files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def edited_files(folder: Path, lock: Lock) -> list[str]:
    """Generated files whose content no longer matches the hash recorded at generation."""
    edited = []
    for rel, digest in sorted(lock.files.items()):
        path = folder / rel
        if path.is_file() and sha256(path.read_bytes()) != digest:
            edited.append(rel)
    return edited


class Staging:
    """A service folder being built beside its destination, swapped in by ``commit``.

    Attributes:
        path: The temporary folder to write the new service into.
        out_dir: The destination.
    """

    def __init__(self, path: Path, out_dir: Path, previous: Lock | None, force: bool) -> None:
        self.path = path
        self.out_dir = out_dir
        self._previous = previous
        self._force = force

    def write(self, files: dict[str, str]) -> None:
        """Write generated contents, keyed by relative POSIX path, into the staging folder."""
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")

    def copy(self, files: dict[str, Path]) -> None:
        """Copy files (data the notebook reads), keyed by relative POSIX path, into the folder.

        They are hashed into the lock at ``commit`` like generated files, so edits are noticed.
        """
        for rel, source in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    def commit(self, lock_for: Callable[[dict[str, str]], Lock]) -> Path | None:
        """Record the lock, carry the user's own files over, and swap the folder in.

        Args:
            lock_for: Builds the lock from the final file hashes.

        Returns:
            The backup folder of the previous version when one was kept, else ``None``.
        """
        generated = {
            p.relative_to(self.path).as_posix(): sha256(p.read_bytes())
            for p in self.path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts
        }
        # The user may have edited the folder while the new version was being verified:
        # judge it again right before the swap (carrying over what is there now).
        self._previous = check_destination(self.out_dir, force=self._force)
        if self._previous is not None and not self._force:
            _refuse_overwriting_user_files(self.out_dir, self._previous, generated)
        if self._previous is not None:
            _carry_user_files(self.out_dir, self.path, self._previous, generated)
        _drop_caches(self.path)
        (self.path / LOCK_NAME).write_text(lock_for(generated).to_json(), encoding="utf-8")
        keep = self._force and self._previous is not None
        return _swap(self.path, self.out_dir, keep_backup=keep)


@contextmanager
def staged(out_dir: Path, *, force: bool = False) -> Iterator[Staging]:
    """Stage a new version of the service folder ``out_dir``; nothing changes until ``commit``.

    The destination is checked first (before any work), then a temporary sibling folder is made.
    If the block raises, or ends without ``commit``, the staging folder is deleted and
    ``out_dir`` is untouched.

    Raises:
        EditedFileError: The user edited generated files and ``force`` is false.
        OutputError: ``out_dir`` is not a folder promoter generated, or cannot be written.
    """
    out_dir = out_dir.resolve()
    previous = check_destination(out_dir, force=force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out_dir)
    build = Path(
        tempfile.mkdtemp(prefix=f".{out_dir.name}.building-{os.getpid()}-", dir=out_dir.parent)
    )
    # mkdtemp makes the folder private (0700); the service folder gets the user's usual mode.
    build.chmod(0o777 & ~_umask())
    try:
        yield Staging(build, out_dir, previous, force)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _remove_stale_builds(out_dir: Path) -> None:
    """Delete temp folders a killed conversion left beside ``out_dir``.

    A SIGKILL skips every cleanup, so the next conversion does it. Each temp folder carries the
    id of the process that made it; folders of a process still running are another conversion's
    work in progress and are left alone.
    """
    prefixes = [f".{out_dir.name}.{kind}-" for kind in ("building", "old")]
    for folder in out_dir.parent.iterdir():
        prefix = next((p for p in prefixes if folder.name.startswith(p)), None)
        if prefix is None or not folder.is_dir():
            continue
        pid = folder.name[len(prefix) :].split("-")[0]
        if not (pid.isdigit() and _running(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask sets it, for every thread)
        status = Path("/proc/self/status").read_text(encoding="ascii")
        return int(next(ln for ln in status.splitlines() if ln.startswith("Umask:")).split()[1], 8)
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def check_destination(out_dir: Path, *, force: bool = False) -> Lock | None:
    """Whether promoter may write the service folder ``out_dir``: its lock, if it has one.

    ``convert`` calls it before any notebook runs, and ``staged`` again before writing.

    Raises:
        EditedFileError: The user edited generated files and ``force`` is false.
        OutputError: ``out_dir`` is not a folder promoter generated.
    """
    out_dir = out_dir.resolve()
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a folder", hint="choose another -o folder")
    if not any(out_dir.iterdir()):
        return None
    lock = read_lock(out_dir)
    if lock is None:
        if force:
            return Lock("unknown", [], {})
        raise OutputError(
            f"{out_dir} is not empty and was not generated by promoter (no {LOCK_NAME})",
            hint="choose an empty or new folder, or pass --force (the folder is kept as a backup)",
        )
    linked = _linked_generated(out_dir, lock)
    if linked:
        # Refused even with --force: promoter never reads a generated file through a link
        # (nor copies what it points to), and replacing it would drop the user's link.
        raise OutputError(
            f"{out_dir}: promoter generated {', '.join(linked)}, now a symbolic link "
            f"(to {os.readlink(out_dir / linked[0])})",
            hint="remove the link, or give it a name the service does not generate "
            "(links you add under other names are kept as links)",
        )
    edited = edited_files(out_dir, lock)
    if edited and not force:
        raise EditedFileError(
            f"you edited {len(edited)} generated file(s) in {out_dir}: " + ", ".join(edited),
            paths=edited,
            hint="move your changes into the notebook, or pass --force "
            "(the current folder is then kept as a backup)",
        )
    return lock


def _linked_generated(out_dir: Path, lock: Lock) -> list[str]:
    """Generated paths the user replaced by a symbolic link (the file, or a folder above it)."""
    linked = set()
    for rel in [*lock.files, LOCK_NAME]:
        path = out_dir
        for part in PurePosixPath(rel).parts:
            path = path / part
            if path.is_symlink():
                linked.add(path.relative_to(out_dir).as_posix())
                break
    return sorted(linked)


def _refuse_overwriting_user_files(out_dir: Path, lock: Lock, generated: dict[str, str]) -> None:
    """Refuse to replace a file of the user's own where the new version generates one."""
    theirs = sorted(
        rel
        for rel in generated
        if rel not in lock.files and (out_dir / rel).is_file() and not (out_dir / rel).is_symlink()
    )
    if theirs:
        raise EditedFileError(
            f"{out_dir} holds your own file(s) where the new service generates: "
            + ", ".join(theirs),
            paths=theirs,
            hint="move or rename them, or pass --force (the current folder is then kept as a "
            "backup)",
        )


def _carry_user_files(out_dir: Path, build: Path, lock: Lock, generated: dict[str, str]) -> None:
    """Carry what the user added to the service folder (not generated, not recorded) over.

    Files are copied; symbolic links are made again as links with the same target (never
    followed, never copied: a link to a file outside stays a link); folders are kept, empty ones
    too, except folders only promoter's files made (an empty one of those is stale).
    """
    made = {parent.as_posix() for rel in lock.files for parent in PurePosixPath(rel).parents}
    folders: list[tuple[Path, Path]] = []
    for top, dirs, names in os.walk(out_dir):  # a linked folder is listed, never entered
        dirs[:] = [d for d in dirs if d not in _CACHES]
        for name in [*dirs, *names]:
            path = Path(top, name)
            rel = path.relative_to(out_dir).as_posix()
            if rel == LOCK_NAME or rel in lock.files or rel in generated:
                continue
            target = build / rel
            try:
                if path.is_symlink():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(os.readlink(path), target)
                elif path.is_dir() and rel not in made:
                    target.mkdir(parents=True, exist_ok=True)
                    folders.append((path, target))
                elif path.is_file():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
            except OSError as exc:
                raise OutputError(
                    f"cannot keep {rel} in {out_dir}: the new service generates files there",
                    hint="move or rename it, then convert again",
                ) from exc
    for path, target in reversed(folders):  # innermost first: a read-only folder comes last
        shutil.copystat(path, target)


def _drop_caches(build: Path) -> None:
    for cache in [*build.rglob("__pycache__"), *build.rglob(".pytest_cache")]:
        shutil.rmtree(cache, ignore_errors=True)


def _swap(build: Path, out_dir: Path, *, keep_backup: bool) -> Path | None:
    if not out_dir.exists():
        build.rename(out_dir)
        return None
    if _exchange(build, out_dir):
        old = build  # after the exchange the build path holds the previous service
    else:
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        build.rename(out_dir)
    if keep_backup:
        backup = _free_name(
            out_dir.with_name(f"{out_dir.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        )
        old.rename(backup)
        return backup
    shutil.rmtree(old, ignore_errors=True)
    return None


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``...: two --force runs in one second keep two backups."""
    candidate, n = path, 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}-{n}"), n + 1
    return candidate


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); ``False`` where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)
