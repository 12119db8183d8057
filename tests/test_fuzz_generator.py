"""Property-based tests of the generator: random parameters cells -> a service that holds up.

No kernel runs here: the static stages read a notebook written to a temp folder, the response
schema comes from a random JSON sample through ``infer_response``, and ``render_service``
writes the service. Every generated Python file must parse and pass ``ruff check`` with the
service's own config; the request model must accept the defaults and refuse wrong types; the
pipeline must hand each parameter back unchanged; the response model must accept the sample.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import keyword
import shutil
import subprocess
import sys
import tempfile
import types
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from promoter.analysis.extract import extract
from promoter.analysis.parameters import infer_request
from promoter.analysis.response import infer_response
from promoter.building.build import format_python
from promoter.building.render import NotebookPlan, ServiceOptions, render_service, render_tests
from promoter.reading.notebook import class_prefix, read_notebook
from promoter.reading.source import response_expression

# Kernels, Jupyter servers or the TypeScript toolchain: the full suite, not the edit loop.
pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Names that collide with something: Python soft keywords, builtins, pydantic's BaseModel API,
# the names the generated modules import or define, and keyword look-alikes.
TRICKY_NAMES = [
    "match", "case", "type", "print", "id", "sum", "list", "dict", "int", "str", "float",
    "bool", "tuple", "json", "copy", "schema", "validate", "construct", "fields",
    "model_config", "model_dump", "model_fields", "Field", "BaseModel", "ConfigDict", "Any",
    "Annotated", "Literal", "Optional", "RootModel", "Union", "request", "req", "run", "setup",
    "self", "cls", "lambda_", "class_", "None_", "True_", "async_", "typing", "pydantic",
    "datetime", "date", "logger", "app", "models", "pipeline", "to_jsonable", "Decimal",
    "größe", "température", "名前", "ﬁle", "ª", "µ", "x" * 80,
]  # fmt: skip


def _identifier(text: str) -> bool:
    return text.isidentifier() and not keyword.iskeyword(text) and not text.startswith("_")


NAMES = st.one_of(
    st.sampled_from(TRICKY_NAMES),
    st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(_identifier),
    st.text(min_size=1, max_size=6).filter(_identifier),
)

# Comments may hold anything but a line break (a NUL is not valid Python source at all).
COMMENTS = st.text(
    st.characters(exclude_characters="\n\r\x00", exclude_categories=["Cs"]), max_size=40
)
JSON_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
NASTY_TEXT = st.one_of(
    JSON_TEXT,
    st.sampled_from(
        [
            '"""',
            "'''",
            "\\",
            "{{ x }}",
            "{% raw %}",
            "__import__('os').system('echo pwned')",
            "\\u2028 \u2028 \u2029 \x0b \x0c \x1c \x85",
            '"; import os; "',
            "\n",
            "#",
            "x" * 300,
        ]
    ),
)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
INTS = st.integers(-(2**53), 2**53)


@dataclass
class Param:
    """One generated parameter: its cell line, its JSON default and values it must refuse."""

    name: str
    expression: str
    annotation: str | None
    default: Any
    wrong: list[Any] = field(default_factory=list)
    comment: str = ""

    def line(self) -> str:
        typed = f"{self.name}: {self.annotation}" if self.annotation else self.name
        text = f"{typed} = {self.expression}"
        return f"{text}  # {self.comment}" if self.comment else text


def _string_literal(draw: st.DrawFn, text: str) -> str:
    """The literal in one of the ways people write it: repr, raw-ish quotes, triple quotes."""
    style = draw(st.sampled_from(["repr", "plain", "triple"]))
    unsafe_plain = set("'\\\n\r\x00")
    if style == "plain" and not unsafe_plain & set(text):
        return f"'{text}'"  # raw characters (U+2028, form feeds, ...) inside the literal
    if style == "triple" and not set('"\\\r\x00') & set(text) and not text.endswith('"'):
        return f'"""{text}"""'
    return repr(text)


@st.composite
def params_of_kind(draw: st.DrawFn, name: str) -> Param:
    kind = draw(
        st.sampled_from(
            ["int", "float", "str", "bool", "none", "optional", "list", "dict", "literal",
             "annotated", "tuple", "nested"]
        )
    )  # fmt: skip
    typed = draw(st.booleans())
    if kind == "int":
        value = draw(INTS)
        return Param(name, repr(value), "int" if typed else None, value, ["seven", [1], 1.5])
    if kind == "float":
        value = draw(FINITE)
        return Param(name, repr(value), "float" if typed else None, value, ["x", [1.0], {}])
    if kind == "str":
        value = draw(NASTY_TEXT)
        literal = _string_literal(draw, value)
        return Param(name, literal, "str" if typed else None, ast.literal_eval(literal), [1, []])
    if kind == "bool":
        value = draw(st.booleans())
        return Param(name, repr(value), "bool" if typed else None, value, ["maybe", 2, []])
    if kind == "none":
        return Param(name, "None", None, None)
    if kind == "optional":
        annotation = draw(st.sampled_from(["int | None", "Optional[int]", "typing.Optional[int]"]))
        return Param(name, "None", annotation, None, ["seven", [1]])
    if kind == "list":
        value = draw(st.lists(st.one_of(INTS) if typed else INTS, min_size=1, max_size=4))
        return Param(name, repr(value), "list[int]" if typed else None, value, [5, "abc", ["x"]])
    if kind == "dict":
        value = draw(st.dictionaries(NASTY_TEXT, INTS, min_size=1, max_size=3))
        annotation = "dict[str, int]" if typed else None
        return Param(name, repr(value), annotation, value, [[1], 5, {"k": "v"}])
    if kind == "literal":
        choices = draw(st.lists(JSON_TEXT, min_size=1, max_size=4, unique=True))
        value = draw(st.sampled_from(choices))
        annotation = "Literal[" + ", ".join(repr(c) for c in choices) + "]"
        outside = "".join(choices) + "-not-a-choice"
        return Param(name, repr(value), annotation, value, [outside, 1])
    if kind == "annotated":
        low = draw(st.integers(-100, 100))
        high = low + draw(st.integers(0, 100))
        value = draw(st.integers(low, high))
        description = draw(NASTY_TEXT)
        annotation = f"Annotated[int, Field(ge={low}, le={high}, description={description!r})]"
        return Param(name, repr(value), annotation, value, [high + 1, low - 1, "x"])
    if kind == "tuple":
        value = (draw(INTS), draw(JSON_TEXT))
        annotation = "tuple[int, str]" if typed else None
        return Param(name, repr(value), annotation, list(value), ["x", [1]])
    value = draw(st.lists(st.lists(FINITE, max_size=3), min_size=1, max_size=3))
    annotation = "list[list[float]]" if typed else None
    return Param(name, repr(value), annotation, value, [[1.0], "x"])


@st.composite
def parameter_sets(draw: st.DrawFn) -> list[Param]:
    # Python folds identifiers to NFKC (`ﬁle` is `file`): two names that fold alike are one name.
    names = draw(
        st.lists(
            NAMES, min_size=0, max_size=6, unique_by=lambda n: unicodedata.normalize("NFKC", n)
        )
    )
    params = []
    for name in names:
        param = draw(params_of_kind(unicodedata.normalize("NFKC", name)))
        param.comment = draw(COMMENTS)
        params.append(param)
    return params


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTS | FINITE | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NASTY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _notebook(folder: Path, params: list[Param], private: str) -> Path:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell
    setup = "import typing\nfrom typing import *\nfrom pydantic import Field"
    parameters = "\n".join([*(p.line() for p in params), private])
    cells = [
        (nbformat.v4.new_markdown_cell('# Fuzz {{ title }}\n\nA "quoted" \\ description.'), []),
        (code(setup), ["setup"]),
        (code(parameters), ["parameters"]),
        (code("values = [" + ", ".join(p.name for p in params) + "]"), []),
        (code("values"), ["response"]),
    ]
    for cell, tags in cells:
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path = folder / "fuzz_case.ipynb"
    nbformat.write(nb, path)
    return path


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _import_service(folder: Path) -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """Import app.models, app.pipeline and app.jsonable of one generated folder, in-process."""
    package = types.ModuleType("app")
    package.__path__ = [str(folder / "app")]
    sys.modules["app"] = package
    try:
        models = _load("app.models", folder / "app/models.py")
        pipeline = _load("app.pipeline", folder / "app/pipeline.py")
        jsonable = importlib.import_module("app.jsonable")  # a package: from app's path
    finally:
        for name in [n for n in sys.modules if n == "app" or n.startswith("app.")]:
            sys.modules.pop(name, None)
    return models, pipeline, jsonable


def _roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


@FUZZ
@given(
    params=parameter_sets(),
    private=st.sampled_from(["", "_seed = 42", "_secret = 'x\u2028y'  # private"]),
    sample=JSON_VALUES,
)
@example(  # regressions: fields named like types or pydantic's API, U+2028 in private code
    params=[
        Param("int", "3", None, 3, ["x"]),
        Param("x", "4", "int", 4, ["x"]),
        Param("list", "[1]", None, [1], [5]),
        Param("y", "[2]", "list[int]", [2], [5]),
        Param("model_dump", "1", None, 1, ["x"]),
    ],
    private="_secret = 'x\u2028y'  # private",
    sample={"int": 1, "list": [1], "model_dump": 2, "str": "s"},
)
@example(params=[], private="", sample=[1, 2])  # no fields: no unused `Field` import
def test_random_parameters_generate_a_sound_service(
    params: list[Param], private: str, sample: Any
) -> None:
    work = Path(tempfile.mkdtemp(prefix="promoter-fuzz-"))
    try:
        _check_service(work, params, private, sample)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_service(work: Path, params: list[Param], private: str, sample: Any) -> None:
    notebook = read_notebook(_notebook(work, params, private))
    request = infer_request(notebook)
    assert [p.name for p in request.parameters] == [p.name for p in params]
    for found, param in zip(request.parameters, params, strict=True):
        comment = param.comment.lstrip("#").strip()
        if comment and not comment.startswith(("type:", "noqa")):
            assert found.description == comment
    extraction = extract(notebook, request, response_expression(notebook))
    response, _ = infer_response(
        sample, "builtins.object", class_prefix(notebook.stem), None, notebook.at()
    )
    options = ServiceOptions(
        name="fuzz-case",
        title='Fuzz "{{ title }}" \\ """',
        description="'''\\n{% raw %}",
        version="0.1.0",
        command="promoter convert fuzz_case.ipynb -o .",
    )
    plans = [NotebookPlan(notebook, request, response, extraction)]
    files = {**render_service(plans, options), **render_tests(plans, options)}
    service = work / "service"
    for rel, text in files.items():
        (service / rel).parent.mkdir(parents=True, exist_ok=True)
        (service / rel).write_text(text, encoding="utf-8")
    format_python(service)
    for path in service.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
         str(service / "pyproject.toml"), str(service)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr

    models, pipeline, jsonable = _import_service(service)
    prefix = class_prefix(notebook.stem)
    request_model = getattr(models, f"{prefix}Request")
    defaults = {p.name: p.default for p in params}
    accepted = request_model.model_validate_json(json.dumps(defaults))
    assert request_model() == accepted
    with pytest.raises(pydantic.ValidationError):
        request_model.model_validate({"__not_a_parameter__": 1})
    for param in params:
        for wrong in param.wrong:
            with pytest.raises(pydantic.ValidationError):
                request_model.model_validate({param.name: wrong})
    pipeline.setup()
    answer = jsonable.to_jsonable(pipeline.run(accepted))
    assert answer == _roundtrip([p.default for p in params])

    response_model = getattr(models, response.model)
    dumped = response_model.model_validate(sample).model_dump(mode="json", by_alias=True)
    assert dumped == sample
