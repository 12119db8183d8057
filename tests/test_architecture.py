"""The shape of the package: stage folders, small modules and functions, no knots.

These hold the line the architecture issues drew: a newcomer reads ``promoter/`` as the
pipeline's stages (one folder each) plus thin front-ends, and a reviewer of a generated service
reads a runtime split along its seams.
"""

import ast
import subprocess
import sys
from pathlib import Path

import promoter

PACKAGE = Path(promoter.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))
SERVICE_APP = PACKAGE.parent / "templates" / "service" / "app"
STAGES = sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 600
MAX_TOP_MODULES = 12


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in MODULES]


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_module_is_longer_than_six_hundred_lines() -> None:
    service = sorted(SERVICE_APP.rglob("*.py"))
    long = [
        f"{path} ({_lines(path)} lines)"
        for path in [*MODULES, *service]
        if _lines(path) > MAX_MODULE_LINES
    ]
    assert long == []


def test_the_top_of_the_package_holds_at_most_twelve_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


def test_each_stage_folder_says_what_enters_and_what_leaves() -> None:
    assert [p.name for p in STAGES] == ["analysis", "building", "frontends", "reading", "running"]
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((stage / "__init__.py").read_text(encoding="utf-8")))
        assert doc is not None, stage
        assert "Enters:" in doc, stage
        assert "Leaves:" in doc, stage
        modules = [p.stem for p in stage.glob("*.py") if p.stem != "__init__"]
        assert [m for m in modules if f"``{m}``" not in doc] == [], stage


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{path.relative_to(PACKAGE)}: from {node.module} import {alias.name}"
        for path, tree in _trees()
        for node in ast.walk(tree)
        # `from promoter.frontends import check as _check` imports a module of the package.
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("promoter.")
        for alias in node.names
        if alias.name.startswith("_") and alias.name != "__version__"
    ]
    assert private == []


def test_no_block_is_worse_than_c() -> None:
    found = subprocess.run(
        [sys.executable, "-m", "radon", "cc", "-n", "D", str(PACKAGE), str(SERVICE_APP)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == ""


def test_the_package_docstring_maps_every_stage_and_top_module() -> None:
    doc = promoter.__doc__ or ""
    top = [p.stem for p in PACKAGE.glob("_*.py") if p.stem not in ("__init__", "__main__")]
    assert [m for m in top if m not in doc] == []
    assert [s.name for s in STAGES if f"{s.name}/" not in doc] == []


def test_public_names_include_the_api_and_the_error_tree() -> None:
    from promoter import _api, _exceptions

    assert set(_api.__all__) | set(_exceptions.__all__) <= set(promoter.__all__)
