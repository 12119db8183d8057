"""Read and validate a notebook, and give every cell its role in the service.

The roles follow the contract in DESIGN.md: tags first (`parameters`, `setup`, `response`,
`skip`), then position (code before `parameters` is setup, code after it up to `response` is the
request handler, code after `response` is skipped).
"""

from __future__ import annotations

import hashlib
import json
import keyword
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from promoter._exceptions import ContractError, Location, NotebookReadError, UsageError
from promoter._lazy import defer_iri_grammar
from promoter.reading.settings import JSON_PATH, Settings, read_settings

__all__ = [
    "JSON_PATH",
    "Cell",
    "Notebook",
    "Role",
    "Settings",
    "class_prefix",
    "missing_path_hint",
    "read_notebook",
    "route_for",
    "snake_case",
]

TAG_PARAMETERS = "parameters"
TAG_SETUP = "setup"
TAG_RESPONSE = "response"
TAG_SKIP = "skip"
ROLE_TAGS = (TAG_PARAMETERS, TAG_SETUP, TAG_RESPONSE, TAG_SKIP)

# Validators use fullmatch: with re.match, `$` also matches before a trailing newline.
_CELL_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


class Role(StrEnum):
    """What a cell becomes in the service."""

    SETUP = "setup"
    PARAMETERS = "parameters"
    HANDLER = "handler"
    RESPONSE = "response"
    SKIP = "skip"
    MARKDOWN = "markdown"
    RAW = "raw"


@dataclass(frozen=True)
class Cell:
    """One notebook cell with its role."""

    index: int
    id: str
    cell_type: str
    source: str
    tags: tuple[str, ...]
    role: Role

    @property
    def promoted(self) -> bool:
        """Whether the cell's code reaches the service."""
        return self.role in (Role.SETUP, Role.PARAMETERS, Role.HANDLER, Role.RESPONSE)

    def preview(self, width: int = 60) -> str:
        """The first non-empty line of the source, shortened to ``width`` characters."""
        line = next((ln.strip() for ln in self.source.splitlines() if ln.strip()), "")
        return line if len(line) <= width else line[: width - 1] + "…"


@dataclass(frozen=True)
class Notebook:
    """A validated notebook, its cells with roles, and its settings."""

    path: Path
    node: Any  # nbformat.NotebookNode, upgraded to nbformat 4
    cells: tuple[Cell, ...]
    settings: Settings
    content_hash: str
    summary: str | None = None
    description: str | None = None
    warnings: tuple[tuple[str, Location], ...] = field(default=())

    def at(self, cell: Cell | None = None, line: int | None = None) -> Location:
        """A location in this notebook, optionally at a cell and a line."""
        if cell is None:
            return Location(notebook=self.path)
        return Location(self.path, cell.index, cell.id, line)

    def with_role(self, *roles: Role) -> list[Cell]:
        """The cells with any of ``roles``, in notebook order."""
        return [cell for cell in self.cells if cell.role in roles]

    @property
    def parameters_cell(self) -> Cell:
        """The single cell tagged ``parameters``."""
        return self.with_role(Role.PARAMETERS)[0]

    @property
    def response_cell(self) -> Cell:
        """The single cell tagged ``response``."""
        return self.with_role(Role.RESPONSE)[0]

    @property
    def stem(self) -> str:
        """The notebook's name in snake case: the default route and module name."""
        return snake_case(self.path.stem)

    @property
    def route(self) -> str:
        """The service route of this notebook."""
        return self.settings.route or route_for(self.path)

    @property
    def class_prefix(self) -> str:
        """The prefix of the notebook's model classes (``IrisClassifier``)."""
        return class_prefix(self.stem)


def snake_case(text: str) -> str:
    """``"Churn Score"`` -> ``"churn_score"``; always a valid, non-keyword identifier."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    words = re.findall(r"[A-Za-z0-9]+", text)
    name = "_".join(words).lower() or "notebook"
    if keyword.iskeyword(name):
        return f"{name}_nb"  # `class` cannot name a module, a function or an argument
    return f"nb_{name}" if name[0].isdigit() else name


def class_prefix(slug: str) -> str:
    """``iris_classifier`` -> ``IrisClassifier``."""
    return "".join(word.capitalize() for word in slug.split("_")) or "Notebook"


def route_for(path: Path) -> str:
    """The default route: ``/`` plus the file stem in snake case."""
    return "/" + snake_case(path.stem)


def read_notebook(path: str | Path) -> Notebook:
    """Read, validate and upgrade a notebook, and assign each cell its role.

    Args:
        path: The ``.ipynb`` file.

    Returns:
        The notebook with its cells, roles and settings.

    Raises:
        UsageError: The file does not exist, or is a folder.
        NotebookReadError: The file is not a valid nbformat 4 notebook.
        ContractError: The cell tags break the contract.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(
            f"{path} is a folder, not a notebook",
            hint=f"name the notebooks (`{path}/*.ipynb`: one service, a route per notebook); "
            f"`promoter check {path}` checks every notebook in it",
        )
    if not path.is_file():
        raise UsageError(f"no such notebook: {path}", hint=missing_path_hint(path))
    raw = path.read_bytes()
    node, warnings = _parse(path, raw)
    cells = _assign_roles(path, node)
    notebook = Notebook(
        path=path,
        node=node,
        cells=cells,
        settings=read_settings(path, node),
        content_hash=hashlib.sha256(raw).hexdigest(),
        warnings=tuple((msg, Location(notebook=path)) for msg in warnings),
        **_summary(cells),
    )
    try:
        _check_contract(notebook)
    except ContractError as exc:
        if warnings:  # nbformat 3: its cells had no tags when it was saved
            exc.hint = f"{exc.hint}; {warnings[0]}"
        raise
    return notebook


def missing_path_hint(path: Path) -> str:
    """``did you mean notebooks/price.ipynb?`` for a close name in the same folder, if any."""
    import difflib

    folder = path.parent
    try:
        # Compared without the suffix, which every notebook shares.
        names = {p.stem: p.name for p in folder.iterdir() if p.suffix == ".ipynb"}
    except OSError:
        return "check the path (its folder does not exist either)"
    close = difflib.get_close_matches(path.stem, list(names), n=1, cutoff=0.6)
    if not close:
        return "check the path"
    return f"did you mean {(folder / names[close[0]]).as_posix()}?"


def _parse(path: Path, raw: bytes) -> tuple[Any, list[str]]:
    defer_iri_grammar()  # keeps `import nbformat` from costing ~1.5 s
    import nbformat

    where = Location(notebook=path)
    text, data = _json(raw, where)
    version = data.get("nbformat")
    if version not in (3, 4):
        raise NotebookReadError(
            f"nbformat {version!r} is not supported (promoter reads nbformat 4, and upgrades 3)",
            location=where,
            hint="open and save the notebook in a current Jupyter",
        )
    warnings: list[str] = []
    try:
        # Reading as version 4 upgrades older 4.x minors (cells gain ids, see below).
        node = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for malformed input
        raise NotebookReadError(
            f"nbformat cannot read the notebook: {_one_line(exc)}",
            location=where,
            hint="open and save the notebook in a current Jupyter",
        ) from None
    if version == 3:
        # Upgraded in memory (tags survive), then judged like any nbformat 4 notebook.
        warnings.append(
            "nbformat 3 notebook upgraded to nbformat 4 in memory; save it as nbformat 4 "
            f"(jupyter nbconvert --to notebook --inplace {path})"
        )
    _ensure_cell_ids(node)
    _check_cell_ids(node, where)
    try:
        nbformat.validate(node)
    except nbformat.ValidationError as exc:
        field_path = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise NotebookReadError(
            f"the notebook fails nbformat validation at {field_path}: {_one_line(exc.message)}",
            location=where,
            hint="open and save the notebook in Jupyter, which repairs most metadata",
        ) from None
    return node, warnings


def _json(raw: bytes, where: Location) -> tuple[str, Any]:
    """The notebook file's text and its JSON data, or a clear error."""
    try:
        # utf-8-sig: some editors save a byte-order mark, which json.loads refuses.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotebookReadError(
            f"the file is not UTF-8 text (bad byte at offset {exc.start})",
            location=where,
            hint="notebooks are UTF-8 JSON; re-save it from Jupyter",
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookReadError(
            f"the file is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            location=where,
            hint="the file may be truncated or hand-edited; restore it from version control",
        ) from None
    except RecursionError:
        raise NotebookReadError(
            "the file's JSON nests too deeply to be read",
            location=where,
            hint="the file may be hand-edited or generated; restore it from version control",
        ) from None
    if not isinstance(data, dict) or "nbformat" not in data:
        raise NotebookReadError(
            "the file is JSON but not a notebook (no `nbformat` key)",
            location=where,
            hint="pass a .ipynb file saved by Jupyter",
        )
    return text, data


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300]


def _ensure_cell_ids(node: Any) -> None:
    # Notebooks older than nbformat 4.5 have no cell ids; derive stable ones from the position
    # so generated code and lock files do not change from one conversion to the next.
    if node.nbformat_minor < 5:
        node.nbformat_minor = 5
    for index, cell in enumerate(node.cells):
        if not cell.get("id"):
            cell["id"] = f"cell-{index}"


def _check_cell_ids(node: Any, where: Location) -> None:
    # nbformat's schema checks ids with `^...$` through re.search, which lets "abc\n" pass.
    for index, cell in enumerate(node.cells):
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not _CELL_ID.fullmatch(cell_id):
            raise NotebookReadError(
                f"invalid id {cell_id!r} (an id is 1 to 64 letters, digits, `-` or `_`)",
                location=Location(where.notebook, index),
                hint="open and save the notebook in Jupyter, or delete the id to have one made",
            )


def _assign_roles(path: Path, node: Any) -> tuple[Cell, ...]:
    raw_cells = [
        (i, c.get("id", f"cell-{i}"), c.cell_type, c.source, _tags(c))
        for i, c in enumerate(node.cells)
    ]
    params = [i for i, _, kind, _, tags in raw_cells if kind == "code" and TAG_PARAMETERS in tags]
    response = [i for i, _, kind, _, tags in raw_cells if kind == "code" and TAG_RESPONSE in tags]
    first_param = params[0] if params else None
    first_response = response[0] if response else None
    cells = []
    for index, cell_id, kind, source, tags in raw_cells:
        role = _role(index, kind, tags, first_param, first_response)
        if role is None:
            raise ContractError(
                f"the cell has conflicting tags {sorted(set(tags) & set(ROLE_TAGS))}",
                location=Location(path, index, cell_id),
                hint="give each cell at most one of: parameters, setup, response, skip",
            )
        cells.append(Cell(index, cell_id, kind, source, tags, role))
    return tuple(cells)


def _tags(cell: Any) -> tuple[str, ...]:
    tags = cell.get("metadata", {}).get("tags", [])
    return tuple(str(t) for t in tags) if isinstance(tags, list) else ()


def _role(
    index: int, kind: str, tags: tuple[str, ...], params: int | None, response: int | None
) -> Role | None:
    if kind == "markdown":
        return Role.MARKDOWN
    if kind != "code":
        return Role.RAW
    explicit = [t for t in ROLE_TAGS if t in tags]
    if len(explicit) > 1:
        return None
    if explicit:
        return {
            TAG_PARAMETERS: Role.PARAMETERS,
            TAG_SETUP: Role.SETUP,
            TAG_RESPONSE: Role.RESPONSE,
            TAG_SKIP: Role.SKIP,
        }[explicit[0]]
    if params is None or index < params:
        return Role.SETUP
    if response is None or index < response:
        return Role.HANDLER
    return Role.SKIP


def _check_contract(nb: Notebook) -> None:
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code:
        raise ContractError(
            "the notebook has no code cells",
            location=nb.at(),
            hint="add a cell tagged `parameters` and one tagged `response`",
        )
    for tag, role in (("parameters", Role.PARAMETERS), ("response", Role.RESPONSE)):
        tagged = nb.with_role(role)
        if not tagged:
            raise ContractError(
                f"no code cell is tagged `{tag}`",
                location=nb.at(),
                hint=f"add the tag `{tag}` to exactly one code cell "
                "(JupyterLab: property inspector > Common Tools > Cell Tags)",
            )
        if len(tagged) > 1:
            raise ContractError(
                f"more than one cell is tagged `{tag}` (cells "
                + ", ".join(str(c.index + 1) for c in tagged)
                + ")",
                location=nb.at(tagged[1]),
                hint=f"keep the `{tag}` tag on exactly one cell",
            )
    if nb.response_cell.index < nb.parameters_cell.index:
        raise ContractError(
            "the `response` cell comes before the `parameters` cell",
            location=nb.at(nb.response_cell),
            hint="move the response cell below the parameters cell",
        )


def _summary(cells: tuple[Cell, ...]) -> dict[str, str | None]:
    for cell in cells:
        if cell.role is not Role.MARKDOWN:
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            match = re.fullmatch(r"#{1,6}\s+(.+?)\s*#*\s*", line)
            if match:
                paragraph = _first_paragraph(lines[i + 1 :])
                return {"summary": match.group(1), "description": paragraph}
    return {"summary": None, "description": None}


def _first_paragraph(lines: list[str]) -> str | None:
    paragraph: list[str] = []
    for line in lines:
        if not line.strip():
            if paragraph:
                break
            continue
        if line.lstrip().startswith("#"):
            break
        paragraph.append(line.strip())
    return " ".join(paragraph) or None
