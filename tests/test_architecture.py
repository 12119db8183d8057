"""The shape of the package: small functions, no private imports across modules, no knots.

These hold the line the architecture issue drew: a newcomer reads ``promoter/`` as the
pipeline's stages plus thin front-ends.
"""

import ast
import subprocess
import sys
from pathlib import Path

import promoter

PACKAGE = Path(promoter.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
MAX_FUNCTION_LINES = 60


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in MODULES]


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = [
        f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{path.name}: from {node.module} import {alias.name}"
        for path, tree in _trees()
        for node in ast.walk(tree)
        # `from promoter import _check` imports a module of the package, not a private name.
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("promoter.")
        for alias in node.names
        if alias.name.startswith("_") and alias.name != "__version__"
    ]
    assert private == []


def test_no_block_is_worse_than_c() -> None:
    found = subprocess.run(
        [sys.executable, "-m", "radon", "cc", "-n", "D", str(PACKAGE)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == ""


def test_the_package_docstring_maps_every_module() -> None:
    doc = promoter.__doc__ or ""
    missing = [p.stem for p in MODULES if p.stem.startswith("_") and p.stem not in doc]
    assert [m for m in missing if m not in ("__init__", "__main__")] == []


def test_public_names_include_the_api_and_the_error_tree() -> None:
    from promoter import _api, _exceptions

    assert set(_api.__all__) | set(_exceptions.__all__) <= set(promoter.__all__)
