"""Where a cell is in the ``.ipynb`` file's own text (for annotations in a diff view)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["cell_file_line"]


def cell_file_line(path: Path, cell_index: int | None, line: int | None = None) -> int | None:
    """The line of the ``.ipynb`` file where cell ``cell_index`` (or its source ``line``) is.

    Found by scanning the raw JSON text, so annotations point at the cell in a diff view: with
    ``line`` (1-based, within the cell's source) the JSON line of that element of the cell's
    ``source`` array, else the cell's ``{``. ``None`` when the index is unknown or the file is
    not nbformat 4 JSON.
    """
    if cell_index is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    cells = _CellScanner(text).scan()
    if not 0 <= cell_index < len(cells):
        return None
    start, source = cells[cell_index]
    if line is None or not source:
        return start
    if isinstance(source, int):  # source saved as one string: every line is on that JSON line
        return source
    return source[line - 1] if 0 < line <= len(source) else start


@dataclass
class _CellScanner:
    """Lines of the cells of a notebook's JSON text: where each starts, where its source is.

    Not a JSON parser: it follows strings and brackets, enough for valid notebook JSON.
    """

    text: str
    line: int = 1
    # The open containers: (bracket, the key it is the value of).
    stack: list[tuple[str, str | None]] = field(default_factory=list)
    # Per cell: its start line, and the lines of its source elements (or of its source string).
    cells: list[tuple[int, list[int] | int]] = field(default_factory=list)

    def scan(self) -> list[tuple[int, list[int] | int]]:
        index, key = 0, None
        while index < len(self.text):
            char = self.text[index]
            if char == "\n":
                self.line += 1
            elif char == '"':
                end = self._string_end(index)
                if self._is_key(end):
                    key = self.text[index + 1 : end]
                else:
                    self._value_string(key)
                index = end
            elif char in "[{":
                self._open(char, key)
            elif char in "]}" and self.stack:
                self.stack.pop()
            index += 1
        return self.cells

    def _string_end(self, index: int) -> int:
        end = index + 1
        while end < len(self.text) and self.text[end] != '"':
            end += 2 if self.text[end] == "\\" else 1
        return end

    def _is_key(self, end: int) -> bool:
        rest = self.text[end + 1 : end + 64].lstrip()
        return bool(self.stack) and self.stack[-1][0] == "{" and rest.startswith(":")

    def _open(self, char: str, key: str | None) -> None:
        parent = self.stack[-1] if self.stack else None
        self.stack.append((char, key if parent is not None and parent[0] == "{" else None))
        if char == "{" and len(self.stack) == 3 and self.stack[1] == ("[", "cells"):
            self.cells.append((self.line, []))

    def _value_string(self, key: str | None) -> None:
        depth = len(self.stack)
        in_cell = depth >= 3 and self.stack[1] == ("[", "cells") and self.cells
        if in_cell and depth == 4 and self.stack[3] == ("[", "source"):
            source = self.cells[-1][1]
            if isinstance(source, list):
                source.append(self.line)
        elif in_cell and depth == 3 and key == "source":
            self.cells[-1] = (self.cells[-1][0], self.line)
