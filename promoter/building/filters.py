"""The Jinja2 filters of the service templates: how notebook text may enter generated files.

Notebook text reaches generated code only through ``pyrepr``/``tojson`` (literals), validated
identifiers, validated type expressions, and the notebook's own promoted code (``codeindent``).
Docstrings and comments get ``doctext`` (no quotes, backslashes or newlines).
"""

from __future__ import annotations

import io
import json
import math
import re
import shlex
import tokenize
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from promoter.reading.source import source_lines

if TYPE_CHECKING:
    from promoter.reading.notebook import Cell

__all__ = [
    "FILTERS",
    "cellref",
    "codeindent",
    "doctext",
    "global_lines",
    "mdtext",
    "pyrepr",
    "visible",
]

_CELL_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_WRAP = 72


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
        return _set_literal(value)
    if isinstance(value, str) and len(value) > _WRAP:
        return _long_string(value)
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    raise TypeError(f"no literal for {type(value).__name__}")


def _set_literal(value: set[Any] | frozenset[Any]) -> str:
    items = sorted(pyrepr(v) for v in value)
    body = "{" + ", ".join(items) + "}" if items else "set()"
    return body if isinstance(value, set) else f"frozenset({body if items else ''})"


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


def visible(text: object) -> str:
    """``text`` without invisible characters: controls (DEL included), bidi and other format
    characters, line and paragraph separators, lone surrogates; each becomes ``_``.

    A heading or file name reaches README files, docstrings and comments only through this, so
    it can neither break a line nor reorder what a reader sees (a "Trojan Source" bidi override).
    """
    return "".join("_" if unicodedata.category(c) in _INVISIBLE else c for c in str(text))


_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def doctext(text: object) -> str:
    """Text safe inside a docstring, comment or TOML comment: one line, no quotes or escapes."""
    return re.sub(r"[\\\"']", "_", visible(text))


def mdtext(text: object) -> str:
    """Text safe in a Markdown paragraph, heading or table cell: visible, one line, no `|`."""
    return visible(text).replace("|", "\\|")


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


def cellref(cell: Cell) -> str:
    """``cell 3 (id 9f1c...)``, the marker that ties generated code to its notebook cell.

    Cells are numbered from 1, as JupyterLab's status bar counts them (``_verify`` reads the
    number back to name the cell of a failing line).
    """
    if _CELL_ID.fullmatch(cell.id):
        return f"cell {cell.index + 1} (id {cell.id})"
    return f"cell {cell.index + 1}"


def _tojson(value: Any) -> str:
    """JSON (also a valid TOML string) with invisible characters escaped as ``\\uXXXX``."""
    text = json.dumps(value, ensure_ascii=False)
    return "".join(
        (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else "\\ufffd")
        if unicodedata.category(c) in _INVISIBLE
        else c
        for c in text
    )


#: Every filter the templates use, by name.
FILTERS: dict[str, Callable[..., Any]] = {
    "pyrepr": pyrepr,
    "global_lines": global_lines,
    "doctext": doctext,
    "mdtext": mdtext,
    "visible": visible,
    "codeindent": codeindent,
    "cellref": cellref,
    "tojson": _tojson,
    "shellquote": shlex.quote,
}
