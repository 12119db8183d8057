"""Render the service files from the Jinja2 templates in ``templates/``.

Notebook text reaches generated code only through the ``pyrepr``/``tojson`` filters (literals),
validated identifiers, validated type expressions, and the notebook's own promoted code.
Docstrings and comments get ``doctext`` (no quotes, backslashes or newlines).
"""

from __future__ import annotations

import io
import json
import math
import re
import shlex
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from promoter._extract import Extraction
from promoter._notebook import Cell, Notebook
from promoter._parameters import _TYPE_NAMES, RequestSchema
from promoter._response import ResponseSchema, safe_attr
from promoter._source import source_lines

__all__ = ["NotebookPlan", "ServiceOptions", "format_python", "render_service", "template_dir"]

_CELL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SERVICE_DEPS = (
    "fastapi",
    "fastapi-offline",
    "orjson",
    "pebble",
    "prometheus-client",
    "pydantic",
    "pydantic-settings",
    "uvicorn",
)
# httpx2 is what Starlette's TestClient wants now (it warns about plain httpx).
_TEST_DEPS = ("pytest", "httpx2", "ruff")
_WRAP = 72


def template_dir() -> Path:
    """The templates folder: inside the installed wheel, or at the root of a source checkout."""
    packaged = Path(__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "templates"


@dataclass(frozen=True)
class NotebookPlan:
    """Everything the templates need about one notebook.

    Attributes:
        golden: Whether the notebook's answer is reproducible (the golden test compares it).
    """

    notebook: Notebook
    request: RequestSchema
    response: ResponseSchema
    extraction: Extraction
    golden: bool = True


@dataclass(frozen=True)
class ServiceOptions:
    """Service-wide choices."""

    name: str
    title: str
    description: str
    version: str
    command: str
    k8s: bool = False
    max_body_bytes: int = 1_048_576


def render_service(plans: list[NotebookPlan], options: ServiceOptions) -> dict[str, str]:
    """Render every file of the service.

    Returns:
        File contents keyed by POSIX path relative to the service folder.
    """
    single = len(plans) == 1
    notebooks = [_notebook_view(plan, single) for plan in plans]
    service = {
        **options.__dict__,
        "notebooks": notebooks,
        "sources_text": ", ".join(nb["source_name"] for nb in notebooks),
        "promoter_version": _version("promoter"),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "dependencies": _pins([*_SERVICE_DEPS, *_distributions(plans)]),
        "test_dependencies": _pins(list(_TEST_DEPS)),
    }
    env = _environment()
    files: dict[str, str] = {}

    def put(path: str, template: str, **extra: Any) -> None:
        files[path] = env.get_template(f"service/{template}").render(service=service, **extra)

    put("app/__init__.py", "app/__init__.py.j2")
    put("app/main.py", "app/main.py.j2")
    for verbatim in ("jsonable.py", "runtime.py"):
        files[f"app/{verbatim}"] = (template_dir() / "service/app" / verbatim).read_text("utf-8")
    for nb in notebooks:
        if not single:
            put(f"{nb['package_path']}/__init__.py", "app/__init__.py.j2")
        put(f"{nb['package_path']}/models.py", "app/models.py.j2", nb=nb)
        put(f"{nb['package_path']}/pipeline.py", "app/pipeline.py.j2", nb=nb)
        files[f"tests/golden/{nb['slug']}.json"] = (
            json.dumps(
                {"request": nb["example"], "response": nb["response"].sample},
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
    files["tests/__init__.py"] = ""
    put("tests/test_service.py", "tests/test_service.py.j2")
    put("pyproject.toml", "pyproject.toml.j2")
    put("README.md", "README.md.j2")
    put("Dockerfile", "Dockerfile.j2")
    put(".dockerignore", "dockerignore.j2")
    if options.k8s:
        for name in ("deployment", "service", "hpa"):
            put(f"k8s/{name}.yaml", f"k8s/{name}.yaml.j2")
    return files


def _notebook_view(plan: NotebookPlan, single: bool) -> dict[str, Any]:
    nb = plan.notebook
    slug = nb.stem
    prefix = class_prefix(slug)
    taken: set[str] = set()
    parameters = [
        {
            "name": p.name,
            "attr": safe_attr(p.name, taken),
            "annotation": p.annotation,
            "default": p.default,
            "description": p.description,
        }
        for p in plan.request.parameters
    ]
    annotations = (
        [p["annotation"] for p in parameters]
        + [plan.response.root]
        + [f.annotation for cls in plan.response.classes for f in cls.fields]
    )
    example = plan.request.defaults()
    package = "app" if single else f"app.{slug}"
    probe = next(
        (p["name"] for p in parameters if not re.search(r"\b(Any|dict|object)\b", p["annotation"])),
        None,
    )
    return {
        "slug": slug,
        "route": nb.route,
        "method_route": f"POST {nb.route}",
        "summary": nb.summary or slug.replace("_", " ").capitalize(),
        "description": nb.description or f"Runs the notebook {nb.path.name}.",
        "source_name": nb.path.name,
        "parameters_cell": nb.parameters_cell,
        "response_cell": nb.response_cell,
        "parameters_ref": cellref(nb.parameters_cell),
        "response_ref": cellref(nb.response_cell),
        "request_class": f"{prefix}Request",
        "response": plan.response,
        "parameters": parameters,
        "needs_alias": any(p["attr"] != p["name"] for p in parameters),
        "model_imports": _model_imports(annotations),
        "pydantic_imports": _pydantic_imports(plan.response, annotations, bool(parameters)),
        "example": example,
        "example_json": json.dumps(example, ensure_ascii=False),
        "package": package,
        "package_path": package.replace(".", "/"),
        "models_module": f"{package}.models",
        "models_alias": "models" if single else f"{slug}_models",
        "pipeline_alias": "pipeline" if single else f"{slug}_pipeline",
        "extraction": plan.extraction,
        # None: "inline" execution, on the event loop, without a timeout.
        "timeout": nb.settings.timeout if nb.settings.execution != "inline" else None,
        "settings_timeout": nb.settings.timeout,
        "execution": nb.settings.execution,
        "sha256": nb.content_hash,
        "golden": plan.golden,
        "typed_probe": probe,
    }


def class_prefix(slug: str) -> str:
    """``iris_classifier`` -> ``IrisClassifier``."""
    return "".join(word.capitalize() for word in slug.split("_")) or "Notebook"


def _model_imports(annotations: list[str]) -> dict[str, list[str]]:
    words = set(re.findall(r"[A-Za-z_]\w*", " ".join(annotations)))
    modules: dict[str, list[str]] = {}
    for name in sorted(words):
        module = _TYPE_NAMES.get(name)
        if module not in (None, "pydantic"):
            modules.setdefault(str(module), []).append(name)
    return dict(sorted(modules.items()))


def _pydantic_imports(
    response: ResponseSchema, annotations: list[str], has_parameters: bool
) -> list[str]:
    words = set(re.findall(r"[A-Za-z_]\w*", " ".join(annotations)))
    names = {"BaseModel", "ConfigDict"}
    # Field is used by every request field and by aliased response fields, else ruff's F401.
    aliased = any(f.attr != f.key for cls in response.classes for f in cls.fields)
    if has_parameters or aliased:
        names.add("Field")
    names |= {w for w in words if _TYPE_NAMES.get(w) == "pydantic"}
    if response.is_root_model:
        names.add("RootModel")
    return sorted(names)


def cellref(cell: Cell) -> str:
    """``cell 3 (id 9f1c...)``, the marker that ties generated code to its notebook cell."""
    if _CELL_ID.match(cell.id):
        return f"cell {cell.index} (id {cell.id})"
    return f"cell {cell.index}"


def pyrepr(value: Any) -> str:
    """A Python literal for a JSON-like value (non-finite floats included)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{pyrepr(k)}: {pyrepr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(pyrepr(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(pyrepr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, set | frozenset):
        items = sorted(pyrepr(v) for v in value)
        body = "{" + ", ".join(items) + "}" if items else "set()"
        return body if isinstance(value, set) else f"frozenset({body if items else ''})"
    if isinstance(value, str) and len(value) > _WRAP:
        return _long_string(value)
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    raise TypeError(f"no literal for {type(value).__name__}")


def _long_string(text: str) -> str:
    """A long string as implicitly concatenated pieces, so generated lines stay short."""
    pieces: list[str] = []
    current = ""
    for word in re.findall(r"\S*\s*", text):
        if current and len(repr(current + word)) > _WRAP - 12:
            pieces.append(current)
            current = ""
        current += word
    pieces.append(current)
    if len(pieces) < 2:
        return repr(text)
    return "(" + " ".join(repr(piece) for piece in pieces) + ")"


def global_lines(names: list[str] | tuple[str, ...]) -> list[str]:
    """``global`` statements for ``names``, wrapped so no line needs a backslash."""
    lines: list[str] = []
    for name in names:
        if lines and len(lines[-1]) + len(name) + 2 <= 88:
            lines[-1] += f", {name}"
        else:
            lines.append(f"global {name}")
    return lines


def doctext(text: object) -> str:
    """Text safe inside a docstring, comment or TOML comment: one line, no quotes or escapes."""
    return re.sub(r"[\\\"'\x00-\x1f\x7f]", "_", str(text))


def codeindent(code: str, width: int) -> str:
    """Indent code, leaving the inside of multi-line strings untouched."""
    inside = _string_continuation_lines(code)
    pad = " " * width
    return "\n".join(
        line if (number in inside or not line.strip()) else pad + line
        for number, line in enumerate(source_lines(code), start=1)
    )


def _string_continuation_lines(code: str) -> set[int]:
    lines: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                lines |= set(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        pass
    return lines


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
    env.filters.update(
        pyrepr=pyrepr,
        global_lines=global_lines,
        doctext=doctext,
        codeindent=codeindent,
        cellref=cellref,
        tojson=lambda v: json.dumps(v, ensure_ascii=False),
        shellquote=shlex.quote,
    )
    return env


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _distributions(plans: list[NotebookPlan]) -> list[str]:
    modules = sorted({m for plan in plans for m in plan.extraction.modules})
    if not modules:
        return []
    mapping = metadata.packages_distributions()
    found: list[str] = []
    for module in modules:
        for dist in mapping.get(module, []):
            if dist not in found:
                found.append(dist)
    return found


def _pins(distributions: list[str]) -> list[str]:
    pins = []
    for dist in distributions:
        version = _version(dist)
        pins.append(dist if version == "0+unknown" else f"{dist}=={version}")
    return sorted(dict.fromkeys(pins), key=str.lower)


def format_python(folder: Path) -> None:
    """Sort imports and format every Python file under ``folder`` with ruff."""
    files = [str(p) for p in folder.rglob("*.py")]
    if not files:
        return
    ruff = [sys.executable, "-m", "ruff"]
    config = (
        ["--config", str(folder / "pyproject.toml")] if (folder / "pyproject.toml").exists() else []
    )
    subprocess.run(
        [*ruff, "check", "--quiet", "--select", "I", "--fix", *config, *files],
        check=False,
        capture_output=True,
    )
    subprocess.run([*ruff, "format", "--quiet", *config, *files], check=False, capture_output=True)
