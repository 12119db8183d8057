"""The single exception hierarchy of promoter.

Every error a user can cause is a ``PromoterError``; each one renders as one readable message
naming the notebook, the cell (numbered from 1, as people count, with its id) and the line,
plus a hint on how to fix it::

    PromoterError
    ├── UsageError              bad arguments (CLI exit code 2)
    ├── NotebookError           something wrong in a notebook (CLI exit code 1)
    │   ├── NotebookReadError   not JSON, not nbformat 4, fails schema validation
    │   ├── ContractError       cell tags break the contract (two `parameters` cells, ...)
    │   ├── ParameterError      a parameter that cannot become a request field
    │   ├── CellSyntaxError     a promoted cell does not parse
    │   ├── ExecutionError      a cell raised (or timed out) while papermill ran the notebook
    │   └── ResponseError       the response value cannot become JSON
    ├── OutputError             the output folder cannot be written safely
    │   └── EditedFileError     regenerating would overwrite a file the user edited
    └── VerificationError       the generated service does not reproduce the notebook
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CellSyntaxError",
    "ContractError",
    "EditedFileError",
    "ExecutionError",
    "Location",
    "NotebookError",
    "NotebookReadError",
    "OutputError",
    "ParameterError",
    "PromoterError",
    "ResponseError",
    "UsageError",
    "VerificationError",
]


@dataclass(frozen=True)
class Location:
    """Where in a notebook something is: the file, the cell (index and id) and the line.

    ``cell_index`` counts from 0, as nbformat's ``cells`` list does; people see cells numbered
    from 1, as JupyterLab's status bar counts them, so messages say ``cell_number``.
    """

    notebook: Path | None = None
    cell_index: int | None = None
    cell_id: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.notebook is not None:
            parts.append(str(self.notebook))
        if self.cell_index is not None:
            cell = f"cell {self.cell_number}"
            if self.cell_id:
                cell += f" (id {self.cell_id})"
            parts.append(cell)
        if self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)

    @property
    def cell_number(self) -> int | None:
        """The cell as people count it: 1-based ("cell 3" is the third cell)."""
        return None if self.cell_index is None else self.cell_index + 1

    def to_dict(self) -> dict[str, Any]:
        """Return the location as JSON-compatible data.

        ``cell_index`` counts from 0 (nbformat's list), ``cell_number`` from 1 (as shown).
        """
        return {
            "notebook": str(self.notebook) if self.notebook is not None else None,
            "cell_index": self.cell_index,
            "cell_number": self.cell_number,
            "cell_id": self.cell_id,
            "line": self.line,
        }


class PromoterError(Exception):
    """Base class of every error promoter raises on purpose.

    Args:
        message: What went wrong, in one sentence.
        location: Where it went wrong, as precisely as known.
        hint: How to fix it.
    """

    exit_code = 1
    #: The executed notebook (nbformat node) when the error came from a run, for reports.
    executed: Any = None

    def __init__(
        self, message: str, *, location: Location | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location or Location()
        self.hint = hint

    def __str__(self) -> str:
        where = str(self.location)
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Return the error as JSON-compatible data (for ``--json`` and the REST API)."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            **self.location.to_dict(),
        }


class UsageError(PromoterError):
    """The caller asked for something impossible (missing file, bad option)."""

    exit_code = 2


class NotebookError(PromoterError):
    """Something in a notebook prevents promoting it."""


class NotebookReadError(NotebookError):
    """The file is not a readable, valid nbformat 4 notebook."""


class ContractError(NotebookError):
    """The notebook's cell tags break the promoter contract."""


class ParameterError(NotebookError):
    """A parameter cannot become a request field."""


class CellSyntaxError(NotebookError):
    """A promoted cell is not valid Python."""


class ExecutionError(NotebookError):
    """A cell raised, or the notebook timed out, while papermill executed it.

    Attributes:
        ename: The exception's class name in the kernel (as papermill reports it).
        evalue: The exception's message in the kernel.
    """

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        hint: str | None = None,
        ename: str | None = None,
        evalue: str | None = None,
    ) -> None:
        super().__init__(message, location=location, hint=hint)
        self.ename = ename
        self.evalue = evalue


class ResponseError(NotebookError):
    """The response cell's value cannot be turned into JSON."""


class OutputError(PromoterError):
    """The output folder cannot be written safely."""


class EditedFileError(OutputError):
    """Regenerating would overwrite files the user edited since the last conversion.

    Attributes:
        paths: The edited files, relative to the output folder.
    """

    def __init__(self, message: str, *, paths: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.paths = paths


class VerificationError(PromoterError):
    """The generated service does not return what the notebook returned."""
