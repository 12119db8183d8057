"""IPython magics and shell escapes in promoted cells: dropped and listed by their real names.

IPython's input transformer turns ``%name args`` into ``get_ipython().run_line_magic(...)``,
``!cmd`` into ``get_ipython().system(...)`` and a cell under ``%%name`` into one
``run_cell_magic(...)`` call (``reading/source`` first unwraps ``%%time`` and ``%%capture``,
whose body runs as ordinary code). The service runs none of them: each one is dropped and listed
with the name the notebook wrote (``%matplotlib``, ``%%bash``, ``!pip install ...``), except
``%time stmt``, whose statement is kept. A magic whose output the answer needs
(``%%capture out``, ``%%bash --out log``, ``files = !ls``) is a clear error naming it.
"""

from __future__ import annotations

import ast
import itertools
import shlex
from dataclasses import dataclass

from promoter._exceptions import CellSyntaxError, ContractError, Location
from promoter.analysis.code import CellCode, Dropped, first_line
from promoter.reading.notebook import Cell, Notebook
from promoter.reading.source import (
    TRANSPARENT_CELL_MAGICS,
    cell_magics,
    parse_cell,
    source_lines,
)

__all__ = [
    "Magic",
    "cell_magics_dropped",
    "magic",
    "magic_output",
    "original_line",
    "refuse_nested_magic",
    "unwrap_transparent",
]

# `%time stmt` runs its statement: keep the statement, drop the timing.
_TRANSPARENT_LINE_MAGICS = {"time"}
# Cell magics that run their body in another program and can keep its output in a variable.
_SCRIPT_MAGICS = {"bash", "sh", "script", "python", "python3", "perl", "ruby", "pypy", "cmd"}


@dataclass(frozen=True)
class Magic:
    """One translated magic or shell escape.

    Attributes:
        kind: ``!`` (shell escape), ``%`` (line magic) or ``%%`` (cell magic).
        name: Its name without ``%`` (``!`` for a shell escape).
        argument: The text after its name (for a cell magic, its body).
    """

    kind: str
    name: str
    argument: str

    @property
    def transparent(self) -> bool:
        """``%time stmt``: the statement is promoted, the timing is not."""
        return self.kind == "%" and self.name in _TRANSPARENT_LINE_MAGICS and bool(self.argument)

    @property
    def why(self) -> str:
        """Why it is not promoted, naming it as the notebook wrote it."""
        if self.kind == "!":
            return "shell escape"
        if self.kind == "%%":
            return f"cell magic %%{self.name}: the service does not run it"
        return f"IPython magic %{self.name}"


def magic(stmt: ast.stmt) -> Magic | None:
    """The magic or shell escape ``stmt`` is (``files = !ls`` too), if it is one."""
    value = stmt.value if isinstance(stmt, ast.Expr | ast.Assign) else None
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute):
        return None
    owner = value.func.value
    if not (
        isinstance(owner, ast.Call)
        and isinstance(owner.func, ast.Name)
        and owner.func.id == "get_ipython"
    ):
        return None
    args = [a.value for a in value.args if isinstance(a, ast.Constant)]
    if value.func.attr in ("system", "getoutput"):
        return Magic("!", "!", str(args[0]) if args else "")
    kind = "%%" if value.func.attr == "run_cell_magic" else "%"
    name = str(args[0]) if args else value.func.attr
    return Magic(kind, name.lstrip("%"), str(args[-1]) if len(args) > 1 else "")


def original_line(cell: Cell, number: int) -> str:
    """Line ``number`` of the cell as the notebook wrote it (before IPython's translation)."""
    lines = source_lines(cell.source.replace("\r\n", "\n").replace("\r", "\n"))
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""


def cell_magics_dropped(notebook: Notebook, cell: Cell) -> list[Dropped]:
    """The ``%%time`` / ``%%capture`` lines opening ``cell``: their body is promoted, they are not.

    The cell magic under them that the service does not run (``%%bash``) is listed where its
    translated call is dropped.
    """
    return [
        Dropped(
            str(found),
            f"cell magic %%{found.name}: its body is promoted, not the magic",
            notebook.at(cell, found.line),
        )
        for found in cell_magics(cell.source)
        if found.name in TRANSPARENT_CELL_MAGICS
    ]


def magic_output(notebook: Notebook, name: str, where: Location) -> ContractError | None:
    """The error for a name only a magic's output binds (``%%capture out``), if it is one."""
    for cell in notebook.cells:
        if cell.cell_type != "code" or not cell.promoted:
            continue
        for found in cell_magics(cell.source):
            if name in _outputs(found.name, found.argument):
                return _needs_output(f"%%{found.name} {found.argument}", name, cell, where)
        try:
            _, tree = parse_cell(notebook, cell)
        except CellSyntaxError:
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and magic(stmt) is not None:
                targets = {
                    n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)
                }
                if name in targets:
                    return _needs_output(original_line(cell, stmt.lineno), name, cell, where)
    return None


def _outputs(name: str, argument: str) -> set[str]:
    """The variables a cell magic stores its output in (``%%capture out``, ``--out log``)."""
    try:
        words = shlex.split(argument)
    except ValueError:
        words = argument.split()
    if name == "capture":
        return {w for w in words[:1] if not w.startswith("-")}
    if name in _SCRIPT_MAGICS:
        return {b for a, b in itertools.pairwise(words) if a in ("--out", "--err")}
    return set()


def _needs_output(text: str, name: str, cell: Cell, where: Location) -> ContractError:
    return ContractError(
        f"`{name}` is the output of `{text.strip()}` (cell {cell.index + 1}), a magic the "
        "service does not run, and the answer needs it",
        location=where,
        hint="compute the value in Python (e.g. subprocess.run(..., capture_output=True, "
        "text=True).stdout for a shell command), or drop it from what the answer reads",
    )


def refuse_nested_magic(notebook: Notebook, cell: Cell, stmt: ast.stmt) -> None:
    """Refuse a magic or shell escape inside a block (it cannot be dropped alone)."""
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and node.id == "get_ipython":
            raise CellSyntaxError(
                "an IPython magic or shell escape inside a block cannot be promoted",
                location=notebook.at(cell, node.lineno),
                hint="move it out of the block into its own line (it is then dropped), "
                "or tag the cell `skip`",
            )


def _transparent(stmt: ast.stmt) -> bool:
    found = magic(stmt)
    return found is not None and found.transparent


def unwrap_transparent(notebook: Notebook, code: CellCode) -> None:
    """Replace each kept ``%time stmt`` by its statement (lines renumbered, tree parsed again)."""
    transparent = [s for s in code.tree.body if s.lineno in code.keep_lines and _transparent(s)]
    if not transparent:
        return
    lines = source_lines(code.source)
    keep: set[int] = set()
    out: list[str] = []
    shift = 0
    for stmt in code.tree.body:
        first, last = first_line(stmt), stmt.end_lineno or stmt.lineno
        out.extend(lines[len(out) - shift : first - 1])
        if stmt in transparent:
            statement = (magic(stmt) or Magic("%", "", "")).argument.rstrip("\n")
            inner = source_lines(statement) or ["pass"]
            keep |= set(range(len(out) + 1, len(out) + len(inner) + 1))
            out.extend(inner)
            shift += len(inner) - (last - first + 1)
        else:
            if first in code.keep_lines:
                keep |= set(range(len(out) + 1, len(out) + last - first + 2))
            out.extend(lines[first - 1 : last])
    out.extend(lines[len(out) - shift :])
    code.source = "\n".join(out) + "\n"
    try:
        code.tree = ast.parse(code.source)
    except SyntaxError as exc:
        raise CellSyntaxError(
            f"the statement under a %time magic does not parse: {exc.msg}",
            location=notebook.at(code.cell),
        ) from None
    code.keep_lines = keep
