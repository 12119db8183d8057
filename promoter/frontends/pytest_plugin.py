"""The pytest plugin: ``pytest --promoter PATH`` checks notebooks as test items.

Like ``pytest --nbmake``: ``pytest --promoter notebooks/`` collects the notebooks under PATH
only; ``pytest tests/ --promoter notebooks/`` collects them beside the unit tests. Each
promotable notebook under PATH (named, or with promoter tags) becomes one test item that runs
the checks of ``promoter check`` (contract, execute, fidelity, drift). A failure is reported
as promoter's one-line messages, never as a traceback of promoter's internals. Items are plain
pytest items, so ``-k``, ``--junit-xml`` and ``pytest-xdist``'s ``-n auto`` work as for any test.

Registered through the ``pytest11`` entry point, so it loads in every pytest run of an
environment where promoter is installed: without ``--promoter`` it only adds its options, and
it imports nothing heavy (papermill, nbformat) until a notebook item runs.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from promoter.frontends.check import NotebookResult
    from promoter.frontends.discover import ServiceIndex

__all__ = ["NotebookFile", "NotebookItem", "PromoterCheckFailed"]

#: The lock file that marks a generated service folder (``promoter.building.output``).
LOCK_NAME = "promoter.lock.json"

#: The notebooks ``--promoter`` selects, found once per pytest run (or xdist worker).
_SELECTED = pytest.StashKey[frozenset[Path]]()
#: The paths given as arguments, besides those ``--promoter`` added.
_EXPLICIT = pytest.StashKey[tuple[Path, ...]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--promoter PATH`` (repeatable), ``--promoter-timeout`` and ``--promoter-exclude``."""
    group = parser.getgroup("promoter", "notebook checks (promoter check)")
    group.addoption(
        "--promoter",
        action="append",
        default=[],
        metavar="PATH",
        dest="promoter_paths",
        help="check the notebooks under PATH (files or folders) as test items; repeatable.",
    )
    group.addoption(
        "--promoter-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        dest="promoter_timeout",
        help="seconds any one notebook cell may run (default: 600).",
    )
    group.addoption(
        "--promoter-exclude",
        action="append",
        default=[],
        metavar="GLOB",
        dest="promoter_exclude",
        help="gitignore-style glob of notebooks or folders to leave out; repeatable.",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    """Make each ``--promoter PATH`` a path to collect, as if given as an argument.

    ``pytest --promoter notebooks/`` then collects the notebooks only (as ``pytest --nbmake
    notebooks/`` does), not the ``testpaths`` of the project's configuration; with other paths
    (``pytest tests/ --promoter notebooks/``) it collects both. Runs before pytest decides what
    to collect (and in each pytest-xdist worker, which parses the same command line).
    """
    namespace = early_config.known_args_namespace
    early_config.stash[_EXPLICIT] = tuple(Path(p).resolve() for p in namespace.file_or_dir)
    paths = [p for p in getattr(namespace, "promoter_paths", []) if p not in namespace.file_or_dir]
    if paths:
        args.extend(paths)  # parsed again by pytest right after this hook
        namespace.file_or_dir = [*namespace.file_or_dir, *paths]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out generated services under a ``--promoter`` path.

    A service folder (it holds ``promoter.lock.json``) has its own tests, which import its
    ``app`` and run from its folder (``cd services/x && pytest``); ``pytest --promoter .`` in a
    project checks the notebooks, not them. A service inside a path named as an argument
    (``pytest services/x``) is collected as usual.
    """
    if not config.getoption("promoter_paths") or not (collection_path / LOCK_NAME).is_file():
        return None
    explicit = config.stash.get(_EXPLICIT, ())
    inside = any(collection_path.resolve().is_relative_to(p) for p in explicit)
    return None if inside else True


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> NotebookFile | None:
    """One ``NotebookFile`` for each notebook ``--promoter`` selects."""
    if file_path.suffix != ".ipynb" or not parent.config.getoption("promoter_paths"):
        return None
    if file_path.resolve() not in _selected(parent.config):
        return None
    result: NotebookFile = NotebookFile.from_parent(parent, path=file_path)
    return result


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say how many notebooks ``--promoter`` collects, and from where."""
    paths = config.getoption("promoter_paths")
    if not paths:
        return None
    found = len(_selected(config))
    return f"promoter: {found} notebook{'s' if found != 1 else ''} to check in {', '.join(paths)}"


def _selected(config: pytest.Config) -> frozenset[Path]:
    """The notebooks to check: as ``promoter check`` finds them (named, or tagged in folders)."""
    cached = config.stash.get(_SELECTED, None)
    if cached is not None:
        return cached
    from promoter._exceptions import PromoterError
    from promoter.frontends.discover import find_notebooks, has_promoter_tags

    try:
        found = find_notebooks(
            config.getoption("promoter_paths"), config.getoption("promoter_exclude")
        )
    except PromoterError as exc:
        raise pytest.UsageError(f"--promoter: {exc}") from None
    selected = frozenset(p.resolve() for p, named in found if named or has_promoter_tags(p))
    config.stash[_SELECTED] = selected
    return selected


class NotebookFile(pytest.File):
    """A notebook file, collected through ``--promoter``."""

    def collect(self) -> list[NotebookItem]:
        """One item: every check of ``promoter check`` on this notebook."""
        return [NotebookItem.from_parent(self, name="promoter-check")]


class PromoterCheckFailed(Exception):
    """A notebook failed one of the checks (carries the result for the report)."""

    def __init__(self, result: NotebookResult) -> None:
        super().__init__(f"{len(result.failures)} check(s) failed")
        self.result = result


class NotebookItem(pytest.Item):
    """The checks of one notebook, as one test."""

    def runtest(self) -> None:
        """Run contract, execute, fidelity and drift checks; fail with their messages."""
        from promoter.frontends.check import check_notebook

        config = self.config
        services = _services(tuple(config.getoption("promoter_paths")), str(config.rootpath))
        # Kernel machinery (jupyter_client, zmq, tornado) warns about its own deprecations;
        # those are not findings about the notebook, and must not turn into errors in projects
        # that run with ``filterwarnings = error``.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = check_notebook(
                _shown(self.path), services=services, timeout=config.getoption("promoter_timeout")
            )
        for warning in result.warnings:
            self.add_report_section("call", "promoter warnings", warning)
        if result.failures:
            raise PromoterCheckFailed(result)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        """Promoter's messages (notebook, cell, line, hint), not a traceback."""
        if isinstance(excinfo.value, PromoterCheckFailed):
            lines = []
            for outcome in excinfo.value.result.failures:
                lines.append(str(outcome))
                if outcome.hint:
                    lines.append(f"  hint: {outcome.hint}")
            return "\n".join(lines)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the item comes from, for pytest's report headers."""
        return self.path, None, f"promoter check {self.path.name}"


def _shown(path: Path) -> Path:
    """``path`` relative to the working folder when inside it: messages stay short."""
    relative = Path(os.path.relpath(path))
    return path if relative.parts[:1] == ("..",) else relative


@functools.cache
def _services(paths: tuple[str, ...], rootdir: str) -> ServiceIndex:
    """Generated services under the checked paths and the rootdir, found once per process."""
    from promoter.frontends.discover import find_services

    return find_services([*paths, rootdir])
