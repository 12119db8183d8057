"""The one build path: plans in, a verified, formatted, locked service folder out.

``convert`` and ``check``'s fidelity step both build through ``build_service``::

    render (all but the tests) -> write into a staging folder -> verify (fresh process)
        -> render the tests (golden where the answer reproduced) -> format -> lock -> swap in

Each template renders once; nothing reaches the destination unless every step succeeded.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from promoter._exceptions import ContractError, Location
from promoter.analysis.determinism import judge
from promoter.analysis.files import DataFile, confined
from promoter.building.environment import LOCK_FILE, ServiceEnvironment, service_environment
from promoter.building.output import LOCK_NAME, Lock, staged
from promoter.building.proof import RequestSet, RouteProof, Step, prove_service
from promoter.building.render import (
    NotebookPlan,
    ServiceOptions,
    notebook_package,
    render_service,
    render_tests,
)
from promoter.building.verify import Fidelity, verify_service
from promoter.reading.notebook import Notebook

__all__ = ["Build", "build_service", "format_python", "relative_path", "service_options"]


@dataclass(frozen=True)
class Build:
    """A service folder that was built, verified and swapped into place.

    Attributes:
        out_dir: The service folder (resolved).
        files: Every file in it, relative to ``out_dir``, sorted.
        fidelity: How each notebook's generated pipeline compares with the notebook, by stem.
        backup: The previous folder, kept because ``force`` overwrote edited files.
        warnings: What the non-determinism rule (``_determinism.judge``) found, and what the
            proof reports (a route whose memory grows).
        steps: Each step of the proof that ran (environment, pipelines, differential,
            concurrency, state, memory), for reports.
    """

    out_dir: Path
    files: tuple[str, ...]
    fidelity: dict[str, Fidelity]
    backup: Path | None
    warnings: tuple[tuple[str, Location], ...] = ()
    steps: tuple[Step, ...] = ()


def build_service(
    plans: list[NotebookPlan],
    options: ServiceOptions,
    out_dir: Path,
    *,
    force: bool = False,
    cell_timeout: float | None = 600,
    strict: bool = False,
    isolated: bool = True,
) -> Build:
    """Render, verify, format and lock the service of ``plans`` into ``out_dir``, atomically.

    Args:
        plans: One per notebook (one route each).
        options: Service-wide choices.
        out_dir: The service folder (created, or regenerated in place).
        force: Overwrite generated files the user edited (the old folder is kept as a backup).
        cell_timeout: Seconds any one notebook cell may run; verification, which runs every
            promoted cell in one go in a fresh interpreter, gets that for each of them, plus
            the interpreter's start-up.
        strict: Fail when a notebook's answer changes from run to run (else a warning).
        isolated: Prove the service in a fresh environment built from its own pins (and ship
            the lock file of it); ``False`` proves it in promoter's own environment.

    Raises:
        VerificationError: The generated code fails where the notebook did not, its answer
            does not fit the response model, or (with ``strict``) it differs from the
            notebook's.
        EditedFileError: The user edited generated files and ``force`` is false.
        OutputError: ``out_dir`` is not a folder promoter generated, or cannot be written.
        ContractError: Two notebooks' data files, or a data file and a generated file, share
            a path.
    """
    files = _data_files(plans)
    paths = tuple(sorted(f.path for f in files))
    options = replace(options, data_files=paths, locked=isolated)
    timeout = _verification_timeout(plans, cell_timeout)
    with staged(out_dir, force=force) as stage:
        rendered = render_service(plans, options)
        _check_collisions(files, rendered)
        stage.write(rendered)
        stage.copy({f.path: f.source for f in files})
        fidelity, warnings, steps = _prove(
            stage.path, plans, timeout, strict=strict, isolated=isolated
        )
        golden = [replace(p, golden=f.matches) for p, f in zip(plans, fidelity, strict=True)]
        stage.write(render_tests(golden, options))
        format_python(stage.path, keep={f.path for f in files})
        backup = stage.commit(lambda files: _lock(plans, stage.out_dir, files))
    out = stage.out_dir
    generated = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    fidelities = {f.slug: f for f in fidelity}
    return Build(out, tuple(generated), fidelities, backup, warnings, steps)


def _prove(
    folder: Path, plans: list[NotebookPlan], timeout: float, *, strict: bool, isolated: bool
) -> tuple[list[Fidelity], tuple[tuple[str, Location], ...], tuple[Step, ...]]:
    """Verify each pipeline, then prove the served app; in the service's own environment."""
    steps: list[Step] = []
    environment = _environment(folder, steps) if isolated else None
    python = environment.python if environment else Path(sys.executable)
    begin = time.perf_counter()
    fidelity = verify_service(
        folder,
        [_verification(p, len(plans)) for p in plans],
        timeout,
        examples={p.notebook.stem: _examples(p) for p in plans},
        python=python,
    )
    detail = "setup() and run() in a fresh process"
    steps.append(Step("pipelines", "passed", detail, time.perf_counter() - begin))
    pairs = list(zip(plans, fidelity, strict=True))
    warnings = [w for p, f in pairs for w in judge(p.notebook, f, strict=strict)]
    routes = [_route_proof(p, f, len(plans)) for p, f in pairs]
    proof = prove_service(folder, python, routes, timeout=timeout)
    return fidelity, (*warnings, *proof.warnings), (*steps, *proof.steps)


def _environment(folder: Path, steps: list[Step]) -> ServiceEnvironment:
    """The service's own environment; its lock file joins the service."""
    environment = service_environment(folder)
    (folder / LOCK_FILE).write_text(environment.lock, encoding="utf-8")
    count = sum(1 for line in environment.lock.splitlines() if "==" in line)
    how = "reused from the cache" if environment.reused else "built"
    detail = f"{count} packages from pyproject.toml's pins, {how}"
    steps.append(Step("environment", "passed", detail, environment.seconds))
    return environment


def _route_proof(plan: NotebookPlan, fidelity: Fidelity, count: int) -> RouteProof:
    nb = plan.notebook
    sets = [RequestSet("defaults", {}, plan.response.sample)]
    sets += [
        RequestSet(f"example {n}", body, answer)
        for n, (body, answer) in enumerate(_examples(plan), start=1)
    ]
    sets += [
        RequestSet(f"generated {n}", body, answer)
        for n, (body, answer) in enumerate(plan.generated, start=1)
    ]
    package = notebook_package(nb.stem, count == 1)
    return RouteProof(nb, nb.route, tuple(sets), fidelity.matches, package)


def _verification_timeout(plans: list[NotebookPlan], cell_timeout: float | None) -> float:
    cells = sum(1 for plan in plans for cell in plan.notebook.cells if cell.promoted)
    return (cell_timeout or 600) * max(cells, 1) + 30


def _data_files(plans: list[NotebookPlan]) -> list[DataFile]:
    """Every notebook's data files; one path may come from two notebooks only if equal."""
    found: dict[str, tuple[DataFile, Notebook]] = {}
    workdirs = {plan.workdir for plan in plans}
    if len(workdirs) > 1:
        raise ContractError(
            "the notebooks sit at different places in their projects "
            f"({', '.join(sorted(workdirs))}): one service works from one folder",
            location=plans[0].notebook.at(),
            hint="build one service per notebook, or keep the notebooks in one folder",
        )
    for plan in plans:
        for file in plan.files:
            confined(plan.notebook, file.path, file.source)  # again: it may be a link by now
            seen = found.setdefault(file.path, (file, plan.notebook))
            if seen[0] is not file and seen[0].source.read_bytes() != file.source.read_bytes():
                raise ContractError(
                    f"{seen[1].path.name} and {plan.notebook.path.name} both read a data file "
                    f"{file.path}, with different contents",
                    location=plan.notebook.at(),
                    hint="a service has one folder: rename one of the files",
                )
    return [file for file, _ in found.values()]


def _check_collisions(files: list[DataFile], rendered: dict[str, str]) -> None:
    import pathspec

    secret = pathspec.GitIgnoreSpec.from_lines(rendered[".dockerignore"].splitlines())
    for file in files:
        top = file.path.split("/")[0]
        # k8s/ and tests/ are also left out of the image by .dockerignore.
        if file.path in rendered or top in ("app", "tests", "k8s", LOCK_NAME):
            raise ContractError(
                f"the notebook reads a data file {file.path}, a path the generated service uses "
                "for its own files",
                hint="move the file into a folder of its own (e.g. data/) and read it there",
            )
        if secret.match_file(file.path):
            raise ContractError(
                f"the data file {file.path} would not reach the image: the service's "
                ".dockerignore keeps keys, credentials, .env files and caches out of it",
                hint="give the service its secrets at run time (a mounted secret or an "
                "environment variable, its path or value from a setting), or rename the file "
                "if it is plain data",
            )


def _verification(plan: NotebookPlan, count: int) -> tuple[Notebook, str, str, Any]:
    package = notebook_package(plan.notebook.stem, count == 1)
    return plan.notebook, package, plan.response.model, plan.response.sample


def _examples(plan: NotebookPlan) -> list[tuple[dict[str, Any], Any]]:
    """The example requests and the notebook's answers to them."""
    answers = plan.response.samples[1:]
    return list(zip(plan.notebook.settings.examples, answers, strict=False))


def _lock(plans: list[NotebookPlan], out_dir: Path, files: dict[str, str]) -> Lock:
    from promoter import __version__
    from promoter.building.drift import lock_entry

    # Data files are judged by the copy the service was built and verified with.
    notebooks = [
        lock_entry(p.notebook, {f.source: files[f.path] for f in p.files}, out_dir) for p in plans
    ]
    return Lock(promoter_version=__version__, notebooks=notebooks, files=files)


def service_options(
    notebooks: list[Notebook], out: Path, *, k8s: bool = False, name: str | None = None
) -> ServiceOptions:
    """The service-wide choices for a service of ``notebooks`` written to ``out``.

    A one-notebook service takes its name, title and description from the notebook; a
    several-notebook one from its folder.
    """
    first = notebooks[0]
    single = len(notebooks) == 1
    slug = first.stem if single else out.resolve().name
    default_name = first.settings.name if single and first.settings.name else _dashed(slug)
    sources = " ".join(shlex.quote(relative_path(nb.path, out)) for nb in notebooks)
    return ServiceOptions(
        name=name or default_name,
        title=(first.summary or slug.replace("_", " ").capitalize()) if single else default_name,
        description=(first.description or "")
        if single
        else "Routes: " + ", ".join(nb.route for nb in notebooks),
        version=first.settings.version,
        command=f"promoter convert {sources} -o .",
        k8s=k8s,
    )


def _dashed(text: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "service"
    return name if name[0].isalpha() else f"svc-{name}"


def relative_path(path: Path, start: Path) -> str:
    """``path`` relative to the folder ``start``, ``/``-separated (``..`` where needed)."""
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def format_python(folder: Path, keep: Collection[str] = ()) -> None:
    """Sort imports and format every Python file under ``folder`` with ruff.

    Args:
        folder: The service folder.
        keep: Relative POSIX paths to leave as they are (data files copied from the notebook's
            folder stay byte for byte what the notebook read).

    ``--no-cache``: ruff would otherwise leave a ``.ruff_cache`` in the user's working folder.
    """
    files = [str(p) for p in folder.rglob("*.py") if p.relative_to(folder).as_posix() not in keep]
    if not files:
        return
    ruff = [sys.executable, "-m", "ruff"]
    config = (
        ["--config", str(folder / "pyproject.toml")] if (folder / "pyproject.toml").exists() else []
    )
    subprocess.run(
        [*ruff, "check", "--no-cache", "--quiet", "--select", "I", "--fix", *config, *files],
        check=False,
        capture_output=True,
    )
    subprocess.run(
        [*ruff, "format", "--no-cache", "--quiet", *config, *files],
        check=False,
        capture_output=True,
    )
