"""Regressions found by the hardening work (issue 7): each bug, pinned by a fast static test."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from promoter import inspect
from promoter._exceptions import NotebookReadError, ParameterError
from promoter.analysis.response import safe_attr
from promoter.reading.source import source_lines
from tests.helpers import write_notebook

CORPUS = Path(__file__).resolve().parent / "corpus"


def test_utf8_bom_is_accepted() -> None:
    assert (CORPUS / "utf8_bom.ipynb").read_bytes().startswith(b"\xef\xbb\xbf")
    result = inspect(CORPUS / "utf8_bom.ipynb", execute=False)
    assert result.request.parameters


def test_nbformat_3_is_upgraded_and_judged_on_its_tags() -> None:
    result = inspect(CORPUS / "nbformat_v3_worksheets.ipynb", execute=False)
    assert result.notebook.node.nbformat == 4
    assert any("nbformat 3" in w.message for w in result.warnings)


def test_unknown_major_version_is_still_refused() -> None:
    with pytest.raises(NotebookReadError, match="nbformat 5"):
        inspect(CORPUS / "nbformat_5_unknown.ipynb", execute=False)


def test_duplicate_parameter_names_name_both_lines() -> None:
    with pytest.raises(ParameterError) as caught:
        inspect(CORPUS / "duplicate_parameter_names.ipynb", execute=False)
    assert "`threshold`" in caught.value.message
    assert "lines 1 and 3" in caught.value.message
    assert caught.value.location.line == 3


def test_star_import_names_are_not_reported_undefined() -> None:
    result = inspect(CORPUS / "setup_star_import.ipynb", execute=False)
    assert "from math import *" in result.extraction.imports


def test_decorators_are_kept_with_their_class() -> None:
    result = inspect(CORPUS / "response_dataclass.ipynb", execute=False)
    setup = "\n".join(block.code for block in result.extraction.setup)
    assert setup.count("@dataclass") == 2
    assert "from dataclasses import dataclass, field" in result.extraction.imports


def test_top_level_await_is_promoted_as_async_run() -> None:
    # Was refused statically (issue 7); DESIGN.md section 1 now promotes it (issue 11).
    result = inspect(CORPUS / "async_await.ipynb", execute=False)
    assert result.extraction.is_async
    assert any("await asyncio.gather" in block.code for block in result.extraction.handler)


def test_line_separators_inside_strings_keep_line_numbers(tmp_path: Path) -> None:
    # str.splitlines() splits at U+2028 and form feeds; Python does not.
    handler = "text = 'a\u2028b\x0cc'\nsize = len(text) + x"
    path = write_notebook(
        tmp_path / "separators.ipynb",
        ("code", "x = 1  # comment with \u2028 and \x0c inside", ["parameters"]),
        ("code", handler, []),
        ("code", "{'size': size}", ["response"]),
    )
    result = inspect(path, execute=False)
    (block,) = result.extraction.handler[:1]
    assert block.code == handler
    assert source_lines("a\u2028b\nc\n") == ["a\u2028b", "c"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [("int", "int_"), ("list", "list_"), ("model_dump", "field_model_dump"), ("x", "x")],
)
def test_field_attributes_never_shadow_types_or_pydantic(key: str, expected: str) -> None:
    assert safe_attr(key, set()) == expected


def test_corpus_table_matches_expected_json() -> None:
    expected = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
    table = (CORPUS / "README.md").read_text(encoding="utf-8")
    files = {p.name for p in CORPUS.glob("*.ipynb")}
    assert set(expected) == files
    for name, outcome in expected.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
        assert row.rstrip().endswith(f"`{outcome}` |"), row
    assert len(files) >= 40


def test_generated_code_with_separators_parses(tmp_path: Path) -> None:
    from promoter.building.filters import codeindent

    code = "text = 'a\u2028b'\nn = 1"
    indented = codeindent(code, 4)
    ast.parse("def f():\n" + indented)
