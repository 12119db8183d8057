"""Notebook text cannot run code, names cannot collide with the generated code, validators are
strict (issue 13), each at the level a user meets it: the CLI, and a generated service on HTTP.

The canary: every payload a hostile annotation carries would create a file; the tests assert it
never appears, while inspect, the request JSON Schema (built by Pydantic) and convert run.
"""

from __future__ import annotations

import contextlib
import json
import string
import unicodedata
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import promoter
from promoter.analysis.types import TYPE_NAMES
from tests.helpers import run_cli, write_notebook


def _payload(canary: Path) -> str:
    return f"__import__('pathlib').Path({str(canary)!r}).write_text('ran') or int"


def _annotated(path: Path, annotation: str, default: str = "1") -> Path:
    return write_notebook(
        path,
        ("code", "import typing\nfrom typing import *\nfrom pydantic import *", []),
        ("code", f"x: {annotation} = {default}", ["parameters"]),
        ("code", "{'x': 1}", ["response"]),
    )


# -- code in annotations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        'list["{p}"]',
        '"{p}"',
        'Optional["{p}"]',
        'dict[str, "{p}"]',
        'Annotated["{p}", Field(ge=0)]',
        'conlist("{p}")',
        'conlist(item_type="{p}")',
        'int | "{p}"',
        'Annotated[int, "{p}"]',
    ],
    ids=["list", "bare", "optional", "dict", "annotated", "conlist", "item-type", "union", "meta"],
)
@pytest.mark.slow
def test_inspect_static_refuses_a_string_forward_reference(tmp_path: Path, template: str) -> None:
    canary = tmp_path / "canary"
    notebook = _annotated(tmp_path / "nb.ipynb", template.format(p=_payload(canary)))
    result = run_cli("inspect", notebook, "--static", "--json")
    assert result.returncode != 0, result.output
    assert "forward reference" in result.output or "literal values" in result.output
    assert "cell 2" in result.output and "line 1" in result.output
    assert not canary.exists()


def test_strings_stay_values_inside_literal_and_field(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    payload = _payload(canary)
    annotation = (
        f"Annotated[Literal[{payload!r}, 'b'], Field(description={payload!r}, "
        f"examples=[{payload!r}])]"
    )
    notebook = _annotated(tmp_path / "nb.ipynb", annotation, default=repr(payload))
    result = run_cli("inspect", notebook, "--static", "--json")
    assert result.returncode == 0, result.output
    schema = json.loads(result.stdout)["request_schema"]["properties"]["x"]
    assert schema["enum"] == [payload, "b"] and schema["examples"] == [payload]
    assert not canary.exists()


@pytest.mark.slow
def test_convert_keeps_strings_as_values_and_the_service_answers(
    tmp_path: Path, serve_folder
) -> None:
    """The generated models.py holds the payload as a Literal value; importing it runs nothing."""
    canary = tmp_path / "canary"
    payload = _payload(canary)
    annotation = f"Annotated[Literal[{payload!r}, 'b'], Field(description={payload!r})]"
    notebook = _annotated(tmp_path / "nb.ipynb", annotation, default="'b'")
    out = tmp_path / "svc"
    result = run_cli("convert", notebook, "-o", out, timeout=900)
    assert result.returncode == 0, result.output
    server = serve_folder(out)
    assert _post(server.url, "/nb", {"x": payload}).json() == {"x": 1}
    assert _post(server.url, "/nb", {"x": "c"}).status_code == 422
    assert not canary.exists()


@pytest.mark.slow
def test_a_forward_reference_on_the_response_cell_is_never_evaluated(tmp_path: Path) -> None:
    """The response type is then inferred instead, with a warning naming the cell."""
    canary = tmp_path / "canary"
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", f'result: list["{_payload(canary)}"] = [x]\nresult', ["response"]),
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900)
    assert result.returncode == 0, result.output
    assert "forward reference" in result.output and "cell 2" in result.output
    assert not canary.exists()


_SCALARS = sorted(name for name in TYPE_NAMES if name[0].islower() or name in ("Any",))


def _annotations(canary: Path) -> st.SearchStrategy[str]:
    """Type expressions from a grammar of allowed and refused parts, with payload strings."""
    payload = _payload(canary)
    strings = st.sampled_from([repr(payload), repr("int"), repr("os.system('id')"), "'x'"])
    names = st.sampled_from([*_SCALARS, "os", "eval", "__import__", "object", "type"])
    leaves = st.one_of(
        names,
        strings,
        st.integers(-3, 3).map(str),
        st.sampled_from(["None", "...", "typing.List", "os.system", "pathlib.Path"]),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        generic = st.sampled_from(["list", "dict", "Optional", "Annotated", "Literal", "tuple"])
        call = st.sampled_from(["Field", "conint", "conlist", "constr", "eval", "print"])
        keyword = st.sampled_from(["ge", "description", "item_type", "default", "pattern"])
        return st.one_of(
            st.tuples(generic, st.lists(inner, min_size=1, max_size=3)).map(
                lambda t: f"{t[0]}[{', '.join(t[1])}]"
            ),
            st.tuples(inner, inner).map(lambda t: f"{t[0]} | {t[1]}"),
            st.tuples(call, st.lists(inner, max_size=2), keyword, inner).map(
                lambda t: f"{t[0]}({', '.join([*t[1], f'{t[2]}={t[3]}'])})"
            ),
            st.tuples(inner, st.sampled_from(["__class__", "system", "mro", "Literal"])).map(
                lambda t: f"({t[0]}).{t[1]}"
            ),
        )

    return st.recursive(leaves, extend, max_leaves=8)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@pytest.mark.slow
def test_no_annotation_ever_runs_notebook_text(tmp_path: Path, data: st.DataObject) -> None:
    """inspect (static) and the request JSON Schema never evaluate what a notebook wrote."""
    canary = tmp_path / "canary"
    annotation = data.draw(_annotations(canary))
    notebook = _annotated(tmp_path / "nb.ipynb", annotation)
    with contextlib.suppress(promoter.PromoterError):
        promoter.inspect(notebook, execute=False).to_dict()
    assert not canary.exists(), annotation


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@pytest.mark.slow
def test_cli_inspect_static_never_runs_generated_annotations(
    tmp_path: Path, data: st.DataObject
) -> None:
    """The same grammar through the real CLI, a handful of examples (each is a process)."""
    canary = tmp_path / "canary"
    annotation = data.draw(_annotations(canary))
    notebook = _annotated(tmp_path / "nb.ipynb", annotation)
    run_cli("inspect", notebook, "--static", "--json")
    assert not canary.exists(), annotation


# -- validators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [("name", "abc\n"), ("route", "/abc\n"), ("version", "1.0\n"), ("shared", ["a\n"])],
)
def test_settings_with_a_trailing_newline_are_refused(
    tmp_path: Path, setting: str, value: object
) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "x", ["response"]),
        metadata={setting: value},
    )
    result = run_cli("inspect", notebook, "--static")
    assert result.returncode != 0, result.output
    assert f"metadata.promoter.{setting}" in result.output


def test_a_cell_id_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb", ("code", "x = 1", ["parameters"]), ("code", "x", ["response"])
    )
    data = json.loads(notebook.read_text())
    data["cells"][1]["id"] = "abc\n"
    notebook.write_text(json.dumps(data))
    result = run_cli("inspect", notebook, "--static")
    assert result.returncode != 0, result.output
    assert "cell 2" in result.output and "invalid id" in result.output
    assert "cell 1" not in result.output  # counted from 1, once (it said "cell 2: cell 1 has")


_INVISIBLE = "\u202e\u2066\x7f\u200b\u2028"


def _invisible_in(text: str) -> list[str]:
    categories = {"Cc", "Cf", "Zl", "Zp", "Cs"}
    return [
        f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in categories and c not in "\n\t"
    ]


# -- names that collide with the generated code (real services) ----------------------------------

_COLLIDING = ["app", "pipeline", "answer", "to_jsonable", "asyncio", "class", "dict", "main"]


def _named(folder: Path, stem: str, title: str = "") -> Path:
    cells = [("markdown", f"# {title}\n\nAbout {title}.", [])] if title else []
    return write_notebook(
        folder / f"{stem}.ipynb",
        *cells,
        ("code", "import json\nfactor = 2", []),
        ("code", "x = 3  # the input", ["parameters"]),
        ("code", "{'name': " + repr(stem) + ", 'y': x * factor}", ["response"]),
    )


def _post(url: str, route: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(url + route, json=body, timeout=30)


@pytest.mark.slow
def test_notebooks_named_like_the_generated_code_serve(tmp_path: Path, serve_folder) -> None:
    """One service of notebooks named like main.py's own names (and a keyword) answers."""
    notebooks = [_named(tmp_path / "nbs", stem) for stem in _COLLIDING]
    out = tmp_path / "svc"
    result = run_cli("convert", *notebooks, "-o", out, timeout=900)
    assert result.returncode == 0, result.output
    server = serve_folder(out)
    for stem in _COLLIDING:
        route = "/class_nb" if stem == "class" else f"/{stem}"
        reply = _post(server.url, route, {"x": 5})
        assert reply.status_code == 200, (stem, reply.text)
        assert reply.json() == {"name": stem, "y": 10}


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["pipeline", "answer"])
def test_a_single_notebook_named_like_the_generated_code_serves(
    tmp_path: Path, serve_folder, stem: str
) -> None:
    title = f"Title {_INVISIBLE} with controls" if stem == "answer" else ""
    notebook = _named(tmp_path, stem, title)
    out = tmp_path / "svc"
    result = run_cli("convert", notebook, "-o", out, timeout=900)
    assert result.returncode == 0, result.output
    reply = _post(serve_folder(out).url, f"/{stem}", {"x": 1})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"name": stem, "y": 2}
    if title:  # a DEL or bidi character in the heading never reaches a generated file raw
        for path in out.rglob("*"):
            if path.is_file() and path.suffix in (".py", ".md", ".toml", ".json", ""):
                text = path.read_text(encoding="utf-8", errors="replace")
                assert _invisible_in(text) == [], path


@pytest.mark.parametrize("name", ["run", "setup"])
@pytest.mark.slow
def test_a_setup_cell_defining_a_generated_name_is_refused(tmp_path: Path, name: str) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", f"import math\n\ndef {name}(v):\n    return v", []),
        ("code", "x = 1", ["parameters"]),
        ("code", f"{{'y': {name}(x)}}", ["response"]),
    )
    result = run_cli("inspect", notebook, "--static")
    assert result.returncode != 0, result.output
    assert f"`{name}`" in result.output and "cell 1" in result.output and "line 3" in result.output


def test_a_file_name_with_invisible_characters_reaches_no_file_raw(tmp_path: Path) -> None:
    """The README and docstring paths of a file name, rendered without running a kernel."""
    from promoter.building.filters import doctext, mdtext

    name = "churn" + _INVISIBLE + string.ascii_letters[:3] + ".ipynb"
    assert _invisible_in(doctext(name)) == [] and _invisible_in(mdtext(name)) == []


@pytest.mark.slow
def test_request_values_convert_as_the_service_readme_says(tmp_path: Path, serve_folder) -> None:
    """Lax by default (`false` for a float is 0.0), strict where the parameters cell says so."""
    notebook = write_notebook(
        tmp_path / "rates.ipynb",
        ("code", "from typing import Annotated\nfrom pydantic import Field", []),
        (
            "code",
            "rate: Annotated[float, Field(strict=True)] = 1.0\nscale: float = 1.0\nn: int = 1",
            ["parameters"],
        ),
        ("code", "{'rate': rate, 'scale': scale, 'n': n}", ["response"]),
    )
    out = tmp_path / "svc"
    result = run_cli("convert", notebook, "-o", out, timeout=900)
    assert result.returncode == 0, result.output
    assert "`false`/`true` for a number field is 0/1" in (out / "README.md").read_text()
    server = serve_folder(out)
    lax = _post(server.url, "/rates", {"scale": False, "n": "3"})
    assert lax.json() == {"rate": 1.0, "scale": 0.0, "n": 3}
    strict = _post(server.url, "/rates", {"rate": False})
    assert strict.status_code == 422 and strict.json()["detail"][0]["loc"][-1] == "rate"
    assert _post(server.url, "/rates", {"rate": 2}).json()["rate"] == 2.0
