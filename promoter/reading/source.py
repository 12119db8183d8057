"""Cell source as Python: IPython syntax translated the way nbconvert's exporter does it."""

from __future__ import annotations

import ast
import keyword
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from promoter._exceptions import CellSyntaxError

if TYPE_CHECKING:
    from promoter.reading.notebook import Cell, Notebook

__all__ = [
    "TRANSPARENT_CELL_MAGICS",
    "CellMagic",
    "ResponseExpression",
    "cell_magic",
    "cell_magics",
    "parse_cell",
    "prefix_before",
    "python_source",
    "response_expression",
    "source_lines",
]


@lru_cache(maxsize=1)
def _transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def source_lines(source: str, *, keepends: bool = False) -> list[str]:
    """Split source into lines the way Python numbers them: at ``\\n`` only.

    ``str.splitlines`` also splits at form feeds, U+2028 and other characters that may sit
    inside a string literal, which would shift every line number after them.
    """
    lines = source.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line + "\n" for line in lines] if keepends else lines


def python_source(source: str) -> str:
    """Translate IPython syntax (``%magic``, ``!shell``, ``?help``) into plain Python calls.

    A cell under a cell magic that runs its body as ordinary code (``%%time``, ``%%capture``,
    see :data:`TRANSPARENT_CELL_MAGICS`) becomes that body, translated in turn, with the magic's
    line left blank so line numbers stay the cell's: ``%%capture`` over ``!pip install x``
    is the shell escape, not a string IPython's transformer cannot read twice.
    """
    if not any(mark in source for mark in "%!?"):
        return source  # the common case needs no IPython at all (and no import cost)
    magic = cell_magic(source)
    if magic is not None and magic.name in TRANSPARENT_CELL_MAGICS:
        body = source_lines(source, keepends=True)[magic.line :]
        blank = next((i for i, line in enumerate(body) if line.strip()), len(body))
        return "\n" * (magic.line + blank) + python_source("".join(body[blank:]))
    return str(_transformer().transform_cell(source))


#: Cell magics whose body IPython runs as ordinary code in the notebook's namespace.
TRANSPARENT_CELL_MAGICS = frozenset({"time", "capture"})


@dataclass(frozen=True)
class CellMagic:
    """A cell magic on a cell's first non-blank line (``%%capture out``).

    Attributes:
        name: The magic's name without ``%%`` (``capture``).
        argument: The rest of its line (``out``).
        line: Its line in the cell (1-based).
    """

    name: str
    argument: str
    line: int

    def __str__(self) -> str:
        return f"%%{self.name} {self.argument}".strip()


def cell_magic(source: str) -> CellMagic | None:
    """The cell magic that opens ``source``, if any (IPython reads one only on the first line)."""
    for number, line in enumerate(source_lines(source), start=1):
        if not line.strip():
            continue
        if not line.startswith("%%") or len(line) < 3:
            return None
        name, _, argument = line[2:].partition(" ")
        return CellMagic(name.strip(), argument.strip(), number)
    return None


def cell_magics(source: str) -> list[CellMagic]:
    """The cell magics that open ``source``: the transparent ones and the one under them."""
    found: list[CellMagic] = []
    offset = 0
    while (magic := cell_magic(source)) is not None:
        found.append(CellMagic(magic.name, magic.argument, magic.line + offset))
        if magic.name not in TRANSPARENT_CELL_MAGICS:
            break
        source = "".join(source_lines(source, keepends=True)[magic.line :])
        offset += magic.line
    return found


def parse_cell(notebook: Notebook, cell: Cell) -> tuple[str, ast.Module]:
    """Translate and parse a code cell.

    Returns:
        The translated source and its syntax tree.

    Raises:
        CellSyntaxError: The cell is not valid Python, naming the line.
    """
    # Python reads a lone \r as a line break too; normalise so line numbers match everywhere.
    source = python_source(cell.source.replace("\r\n", "\n").replace("\r", "\n"))
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        line_text = (exc.text or "").strip()
        name = line_text.split("=")[0].strip() if "=" in line_text else ""
        if keyword.iskeyword(name):
            raise CellSyntaxError(
                f"`{name}` is a Python keyword and cannot be a variable name",
                location=notebook.at(cell, exc.lineno),
                hint=f"rename it, e.g. `{name}_`",
            ) from None
        raise CellSyntaxError(
            f"syntax error: {exc.msg}" + (f": {line_text!r}" if line_text else ""),
            location=notebook.at(cell, exc.lineno),
            hint="fix the cell so it runs in Jupyter, or tag it `skip`",
        ) from None
    except ValueError as exc:  # e.g. null bytes in the source
        raise CellSyntaxError(
            f"the cell cannot be parsed: {exc}", location=notebook.at(cell)
        ) from None
    return source, tree


@dataclass(frozen=True)
class ResponseExpression:
    """The response cell, read once and carried through the stages that need it.

    Attributes:
        cell: The response cell.
        source: Its source, IPython syntax translated.
        last: Its last statement, whose value is the response.
        annotation: The declared response type's source, if the cell declares one.
    """

    cell: Cell
    source: str
    last: ast.stmt
    annotation: str | None


def response_expression(notebook: Notebook) -> ResponseExpression:
    """Find the response value of the notebook's response cell.

    The value is the cell's last expression; ``name: Type = value`` as the last statement (or a
    last expression ``name`` annotated earlier in the cell) also declares the response type.

    Raises:
        ContractError: The cell does not end with an expression.
    """
    from promoter._exceptions import ContractError

    cell = notebook.response_cell
    source, tree = parse_cell(notebook, cell)
    if not tree.body:
        raise ContractError(
            "the response cell is empty",
            location=notebook.at(cell),
            hint="end the response cell with the expression to return, e.g. `result`",
        )
    last = tree.body[-1]
    annotation: ast.expr | None = None
    if isinstance(last, ast.AnnAssign) and isinstance(last.target, ast.Name) and last.value:
        annotation = last.annotation
    elif isinstance(last, ast.Expr):
        if isinstance(last.value, ast.Name):
            annotation = _annotation_of(tree, last.value.id)
    else:
        raise ContractError(
            f"the response cell must end with an expression, not `{type(last).__name__}`",
            location=notebook.at(cell, last.lineno),
            hint="add the value to return as the cell's last line, e.g. `result`",
        )
    declared = ast.unparse(annotation) if annotation is not None else None
    return ResponseExpression(cell, source, last, declared)


def _annotation_of(tree: ast.Module, name: str) -> ast.expr | None:
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == name
        ):
            return stmt.annotation
    return None


def prefix_before(source: str, node: ast.stmt) -> str:
    """The source text before ``node`` (ast column offsets count UTF-8 bytes)."""
    lines = source_lines(source, keepends=True)
    head = "".join(lines[: node.lineno - 1])
    first = lines[node.lineno - 1].encode()[: node.col_offset].decode()
    return head + first
