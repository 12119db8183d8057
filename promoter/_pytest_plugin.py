"""The pytest plugin: ``pytest --promoter PATH`` checks notebooks beside the unit tests.

Each promotable notebook under PATH becomes one test item that runs the checks of
``promoter check`` (contract, execute, fidelity, drift). A failure is reported as promoter's
one-line messages, never as a traceback of promoter's internals. Items are plain pytest items,
so ``-k``, ``--junit-xml`` and ``pytest-xdist``'s ``-n auto`` work as for any test.

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
    from promoter._check import NotebookResult
    from promoter._discover import ServiceIndex

__all__ = ["NotebookFile", "NotebookItem", "PromoterCheckFailed"]


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
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Append one item per promotable notebook (before ``-k`` and friends deselect)."""
    paths = config.getoption("promoter_paths")
    if not paths:
        return
    from promoter._discover import find_notebooks, has_promoter_tags
    from promoter._exceptions import PromoterError

    try:
        found = find_notebooks(paths, config.getoption("promoter_exclude"))
    except PromoterError as exc:
        raise pytest.UsageError(f"--promoter: {exc}") from None
    for path, named in found:
        if named or has_promoter_tags(path):
            collector = NotebookFile.from_parent(session, path=path.resolve())
            items.extend(collector.collect())


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
        from promoter._check import check_notebook

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
    from promoter._discover import find_services

    return find_services([*paths, rootdir])
