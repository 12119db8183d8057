"""Render the service files from the Jinja2 templates in ``templates/service``.

The templates see typed, frozen views (``ServiceView``, ``NotebookView``, ``ParameterView``)
built from the pipeline's results; notebook text enters them only through the filters of
``_filters``. ``render_service`` renders every file but the test suite, whose golden tests
depend on the verification of the rendered code; ``render_tests`` renders it afterwards.
"""

from __future__ import annotations

import builtins
import json
import keyword
import math
import re
import sys
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

from promoter.analysis.extract import Extraction
from promoter.analysis.files import DataFile
from promoter.analysis.parameters import RequestSchema
from promoter.analysis.response import ResponseSchema, safe_attr
from promoter.analysis.types import TYPE_NAMES, model_imports
from promoter.building.filters import FILTERS
from promoter.building.pins import installed_version, service_dependencies, testing_dependencies
from promoter.building.resources import shipped_sources, template_dir
from promoter.reading.notebook import Cell, Notebook

__all__ = [
    "NotebookPlan",
    "NotebookView",
    "ParameterView",
    "ServiceOptions",
    "ServiceView",
    "notebook_package",
    "render_service",
    "render_tests",
]

TESTS_FILE = "tests/test_service.py"


@dataclass(frozen=True)
class NotebookPlan:
    """Everything the templates need about one notebook.

    Attributes:
        golden: Whether the notebook's answer is reproducible (the golden test compares it).
        files: The data files that travel with the service.
        workdir: The pipeline's working folder, relative to the service folder.
    """

    notebook: Notebook
    request: RequestSchema
    response: ResponseSchema
    extraction: Extraction
    golden: bool = True
    files: tuple[DataFile, ...] = ()
    workdir: str = "."
    #: Top-level modules loaded while the notebook ran (lazy backends, unpickled classes).
    imported: tuple[str, ...] = ()
    #: Generated request bodies and the notebook's answers to them (the differential proof).
    generated: tuple[tuple[dict[str, Any], Any], ...] = ()


@dataclass(frozen=True)
class ServiceOptions:
    """Service-wide choices."""

    name: str
    title: str
    description: str
    version: str
    command: str
    k8s: bool = False
    #: The data files copied into the service (relative POSIX paths; the README lists them).
    data_files: tuple[str, ...] = ()
    #: The service ships requirements.lock (verified in its own environment) and installs it.
    locked: bool = False


@dataclass(frozen=True)
class ParameterView:
    """One request field as the templates write it."""

    name: str
    attr: str
    annotation: str
    default: Any
    description: str | None
    #: The default is JSON (or a string) standing for the annotated type: validate it into
    #: that type (a date, a Decimal, a Path, an enum member) when the field is omitted.
    validate_default: bool = False


@dataclass(frozen=True)
class NotebookView:
    """One notebook (one route) as the templates see it."""

    slug: str
    #: The name of the route's function in ``app/main.py`` (clear of every other name there).
    function: str
    route: str
    method_route: str
    summary: str
    description: str
    source_name: str
    parameters_cell: Cell
    response_cell: Cell
    request_class: str
    response: ResponseSchema
    parameters: tuple[ParameterView, ...]
    needs_alias: bool
    model_imports: dict[str, list[str]]
    pydantic_imports: list[str]
    example: dict[str, Any]
    example_json: str
    #: The OpenAPI request examples: the defaults, then ``metadata.promoter.examples``.
    request_examples: list[dict[str, Any]]
    #: One golden file per answer the schema was inferred from, relative to ``tests/golden``:
    #: ``{slug}.json`` (the defaults), then ``{slug}/example-{n}.json``.
    goldens: tuple[str, ...]
    package: str
    package_path: str
    models_module: str
    models_alias: str
    pipeline_alias: str
    extraction: Extraction
    #: The pipeline's working folder, relative to the service folder (``.``: the folder).
    workdir: str
    #: ``None``: "inline" execution, on the event loop, without a timeout.
    timeout: float | None
    #: "thread", "inline" or "process" (``metadata.promoter.execution``).
    execution: str
    #: The notebook's ``metadata.promoter.timeout`` (the route's default; settings override it).
    settings_timeout: float
    #: ``POST`` here submits the route's request as a job (DESIGN.md section 3b).
    job_route: str
    #: The notebook's ``metadata.promoter.job_timeout`` (settings override it).
    job_timeout: float
    #: The notebook file's sha256 (served by ``GET /version``).
    sha256: str
    golden: bool
    #: A field whose type rejects a JSON object (for the generated 422 test), if any.
    typed_probe: str | None


@dataclass(frozen=True)
class ServiceView:
    """The whole service as the templates see it."""

    name: str
    title: str
    description: str
    version: str
    command: str
    k8s: bool
    data_files: tuple[str, ...]
    locked: bool
    notebooks: tuple[NotebookView, ...]
    sources_text: str
    promoter_version: str
    python: str
    dependencies: list[str]
    test_dependencies: list[str]
    #: Seconds a stopping job worker may take: the longest job timeout, plus 30.
    job_grace: float

    @property
    def drain_seconds(self) -> int:
        """uvicorn's graceful shutdown: longer than every route's timeout (at least 20 s)."""
        longest = max((nb.timeout for nb in self.notebooks if nb.timeout is not None), default=0)
        return max(20, math.ceil(longest) + 5)

    @property
    def grace_seconds(self) -> int:
        """The pod's termination grace: the preStop pause (5 s), the drain, and 5 s to spare."""
        return self.drain_seconds + 10


def render_service(plans: list[NotebookPlan], options: ServiceOptions) -> dict[str, str]:
    """Render every file of the service except its test suite (see ``render_tests``).

    Returns:
        File contents keyed by POSIX path relative to the service folder.
    """
    service = service_view(plans, options)
    single = len(plans) == 1
    files = {
        "app/__init__.py": _render("app/__init__.py.j2", service),
        "app/main.py": _render("app/main.py.j2", service),
        **shipped_sources(),
    }
    for nb in service.notebooks:
        if not single:
            files[f"{nb.package_path}/__init__.py"] = _render("app/__init__.py.j2", service)
        files[f"{nb.package_path}/models.py"] = _render("app/models.py.j2", service, nb=nb)
        files[f"{nb.package_path}/pipeline.py"] = _render("app/pipeline.py.j2", service, nb=nb)
        files.update(_goldens(nb))
        if nb.workdir != ".":
            files[f"{nb.workdir}/README.md"] = _WORKDIR_README.format(workdir=nb.workdir)
    files["tests/__init__.py"] = ""
    for path, template in _DEPLOY_FILES:
        files[path] = _render(template, service)
    if options.k8s:
        for name in ("deployment", "service", "hpa", "pdb", "networkpolicy"):
            files[f"k8s/{name}.yaml"] = _render(f"k8s/{name}.yaml.j2", service)
        # The job workers (SERVICE_JOBS_URL=redis://...), applied on their own: they need KEDA.
        for name in ("deployment", "scaledobject", "networkpolicy"):
            files[f"k8s/workers/{name}.yaml"] = _render(f"k8s/workers/{name}.yaml.j2", service)
    return files


_WORKDIR_README = """\
# {workdir}/

Generated by promoter. The notebook sits in `{workdir}/` of its project and opens its files
relative to that folder (e.g. `../data/...`): the service keeps the same layout and its
pipeline works from here, so those paths resolve in the service as they did in the project.
"""

_DEPLOY_FILES = (
    ("pyproject.toml", "pyproject.toml.j2"),
    ("README.md", "README.md.j2"),
    ("Dockerfile", "Dockerfile.j2"),
    (".dockerignore", "dockerignore.j2"),
)


def render_tests(plans: list[NotebookPlan], options: ServiceOptions) -> dict[str, str]:
    """Render the service's test suite; each plan's ``golden`` decides its golden test."""
    return {TESTS_FILE: _render("tests/test_service.py.j2", service_view(plans, options))}


def service_view(plans: list[NotebookPlan], options: ServiceOptions) -> ServiceView:
    """The view of the whole service the templates render."""
    single = len(plans) == 1
    notebooks = _clear_functions(tuple(notebook_view(plan, single) for plan in plans))
    modules = [m for plan in plans for m in plan.extraction.modules]
    # A module only dropped code imported (matplotlib for a plot) is no dependency, even
    # though the notebook's run loaded it.
    dropped = {
        d.what.split()[1].lstrip(".").split(".")[0]
        for plan in plans
        for d in plan.extraction.dropped
        if d.why == "import unused by the service" and len(d.what.split()) > 1
    }
    imported = [m for plan in plans for m in plan.imported]
    return ServiceView(
        **{f.name: getattr(options, f.name) for f in fields(options)},
        notebooks=notebooks,
        sources_text=", ".join(nb.source_name for nb in notebooks),
        promoter_version=installed_version("promoter"),
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        dependencies=service_dependencies(modules, imported, dropped),
        test_dependencies=testing_dependencies(),
        job_grace=max(plan.notebook.settings.job_timeout for plan in plans) + 30,
    )


def notebook_view(plan: NotebookPlan, single: bool) -> NotebookView:
    """The view of one notebook's route the templates render."""
    nb = plan.notebook
    slug = nb.stem
    parameters = _parameters(plan.request)
    annotations = (
        [p.annotation for p in parameters]
        + [plan.response.root]
        + [f.annotation for cls in plan.response.classes for f in cls.fields]
    )
    example = plan.request.defaults()
    package = notebook_package(slug, single)
    return NotebookView(
        slug=slug,
        route=nb.route,
        method_route=f"POST {nb.route}",
        summary=nb.summary or slug.replace("_", " ").capitalize(),
        description=nb.description or f"Runs the notebook {nb.path.name}.",
        source_name=nb.path.name,
        parameters_cell=nb.parameters_cell,
        response_cell=nb.response_cell,
        request_class=f"{nb.class_prefix}Request",
        response=plan.response,
        parameters=parameters,
        needs_alias=any(p.attr != p.name for p in parameters),
        model_imports=model_imports(annotations),
        pydantic_imports=_pydantic_imports(plan.response, annotations, bool(parameters)),
        example=example,
        example_json=json.dumps(example, ensure_ascii=False),
        request_examples=[example, *nb.settings.examples],
        goldens=tuple(_golden_names(slug, plan.response.samples)),
        package=package,
        package_path=package.replace(".", "/"),
        models_module=f"{package}.models",
        models_alias="models" if single else f"{slug}_models",
        pipeline_alias="pipeline" if single else f"{slug}_pipeline",
        function=slug,
        extraction=plan.extraction,
        workdir=plan.workdir,
        timeout=nb.settings.timeout if nb.settings.execution != "inline" else None,
        execution=nb.settings.execution,
        settings_timeout=nb.settings.timeout,
        job_route=f"{nb.route}/jobs",
        job_timeout=nb.settings.job_timeout,
        sha256=nb.content_hash,
        golden=plan.golden,
        typed_probe=_typed_probe(parameters),
    )


#: Module names ``app/`` holds besides the notebook packages.
_APP_MODULES = frozenset(
    {"main", "jsonable", "runtime", "jobs", "worker", "models", "pipeline", "tests"}
)


def notebook_package(slug: str, single: bool) -> str:
    """The notebook's package: ``app`` alone, else ``app.<slug>`` clear of ``app``'s modules."""
    if single:
        return "app"
    return f"app.{slug}_notebook" if slug in _APP_MODULES else f"app.{slug}"


def _clear_functions(notebooks: tuple[NotebookView, ...]) -> tuple[NotebookView, ...]:
    """Name each route function so it replaces nothing ``app/main.py`` defines or imports.

    Every word of the main template (its helpers, imports, the module aliases) and every
    builtin is taken: a notebook named ``answer``, ``app``, ``asyncio`` or ``dict`` gets
    ``answer_route``, ... instead.
    """
    taken = set(_main_words()) | {n.models_alias for n in notebooks}
    taken |= {n.pipeline_alias for n in notebooks}
    views = []
    for nb in notebooks:
        name = nb.slug
        while name in taken or f"{name}_job" in taken:  # the job form's function too
            name += "_route"
        taken |= {name, f"{name}_job"}
        views.append(replace(nb, function=name))
    return tuple(views)


@lru_cache(maxsize=1)
def _main_words() -> frozenset[str]:
    # main.py's own template, and the modules it may import names from.
    app = template_dir() / "service" / "app"
    sources = [app / "main.py.j2", *sorted((app / "runtime").glob("*.py"))]
    source = "\n".join(p.read_text(encoding="utf-8") for p in sources if p.is_file())
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))
    return frozenset(words | set(dir(builtins)) | set(keyword.kwlist))


def _parameters(request: RequestSchema) -> tuple[ParameterView, ...]:
    taken: set[str] = set()
    return tuple(
        ParameterView(
            p.name,
            safe_attr(p.name, taken),
            p.annotation,
            p.default,
            p.description,
            p.validate_default,
        )
        for p in request.parameters
    )


def _typed_probe(parameters: tuple[ParameterView, ...]) -> str | None:
    untyped = re.compile(r"\b(Any|dict|object)\b")
    return next((p.name for p in parameters if not untyped.search(p.annotation)), None)


def _pydantic_imports(
    response: ResponseSchema, annotations: list[str], has_parameters: bool
) -> list[str]:
    words = set(re.findall(r"[A-Za-z_]\w*", " ".join(annotations)))
    names = {"BaseModel", "ConfigDict"}
    # Field is used by every request field and by aliased response fields, else ruff's F401.
    aliased = any(f.attr != f.key for cls in response.classes for f in cls.fields)
    if has_parameters or aliased:
        names.add("Field")
    names |= {w for w in words if TYPE_NAMES.get(w) == "pydantic"}
    if response.is_root_model:
        names.add("RootModel")
    return sorted(names)


def _golden_names(slug: str, samples: tuple[Any, ...]) -> list[str]:
    return [f"{slug}.json"] + [f"{slug}/example-{n}.json" for n in range(1, len(samples))]


def _goldens(nb: NotebookView) -> dict[str, str]:
    """One golden file per sample: the request and the notebook's own answer to it."""
    samples = nb.response.samples or (nb.response.sample,)
    files = {}
    for name, request, answer in zip(nb.goldens, nb.request_examples, samples, strict=False):
        golden = {"request": request, "response": answer}
        files[f"tests/golden/{name}"] = json.dumps(golden, indent=2, ensure_ascii=False) + "\n"
    return files


def _render(template: str, service: ServiceView, **extra: Any) -> str:
    return str(_environment().get_template(f"service/{template}").render(service=service, **extra))


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    return env
