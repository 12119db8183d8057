"""Read and validate a notebook, and give every cell its role in the service.

The roles follow the contract in DESIGN.md: tags first (`parameters`, `setup`, `response`,
`skip`), then position (code before `parameters` is setup, code after it up to `response` is the
request handler, code after `response` is skipped).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from promoter._exceptions import ContractError, Location, NotebookReadError, UsageError
from promoter._lazy import defer_iri_grammar

__all__ = [
    "JSON_PATH",
    "Cell",
    "Notebook",
    "Role",
    "Settings",
    "cell_file_line",
    "class_prefix",
    "read_notebook",
    "route_for",
    "snake_case",
]

TAG_PARAMETERS = "parameters"
TAG_SETUP = "setup"
TAG_RESPONSE = "response"
TAG_SKIP = "skip"
ROLE_TAGS = (TAG_PARAMETERS, TAG_SETUP, TAG_RESPONSE, TAG_SKIP)

_ROUTE = re.compile(r"^/[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
_SETTINGS = {
    "route",
    "name",
    "version",
    "timeout",
    "execution",
    "examples",
    "maps",
    "records",
    "files",
    "max_file_mb",
}
#: A JSON path into the response: ``$``, then ``.key``, ``["any key"]``, ``[*]`` (list items) or
#: ``.*`` (the values of a map), e.g. ``$.by_state``, ``$.rows[*].scores``.
JSON_PATH = re.compile(r'^\$(\.[A-Za-z_][A-Za-z0-9_]*|\[\*\]|\.\*|\["(?:[^"\\]|\\.)*"\])*$')
_EXECUTION_MODES = ("thread", "inline")


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
class Settings:
    """Notebook-level settings from ``metadata.promoter`` (all optional)."""

    route: str | None = None
    name: str | None = None
    version: str = "0.1.0"
    timeout: float = 30.0
    #: "thread" (default): each request runs in a worker thread under the timeout.
    #: "inline": on the event loop, for handlers that take microseconds; no timeout then.
    execution: str = "thread"
    #: Globs (relative to the notebook's folder) of data files that travel with the service
    #: besides those the default run was seen reading (files only other parameters read).
    files: tuple[str, ...] = ()
    #: The largest data file that may travel with the service, in megabytes.
    max_file_mb: float = 200.0
    #: Parameter sets run besides the defaults to infer the response schema (and the OpenAPI
    #: request examples).
    examples: tuple[dict[str, Any], ...] = ()
    #: JSON paths of response objects to read as maps (``dict[str, T]``) / as records (models).
    maps: tuple[str, ...] = ()
    records: tuple[str, ...] = ()


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
        UsageError: The file does not exist.
        NotebookReadError: The file is not a valid nbformat 4 notebook.
        ContractError: The cell tags break the contract.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such notebook: {path}", hint="check the path")
    raw = path.read_bytes()
    node, warnings = _parse(path, raw)
    cells = _assign_roles(path, node)
    notebook = Notebook(
        path=path,
        node=node,
        cells=cells,
        settings=_settings(path, node),
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
                + ", ".join(str(c.index) for c in tagged)
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
            match = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
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


def _settings(path: Path, node: Any) -> Settings:
    raw = node.metadata.get("promoter", {})
    where = Location(notebook=path)
    if not isinstance(raw, dict):
        raise ContractError(
            "metadata.promoter must be an object", location=where, hint="see DESIGN.md section 1"
        )
    unknown = set(raw) - _SETTINGS
    if unknown:
        raise ContractError(
            f"unknown keys in metadata.promoter: {sorted(unknown)}",
            location=where,
            hint=f"known keys: {sorted(_SETTINGS)}",
        )
    route, name = _route_and_name(raw, where)
    version = raw.get("version", "0.1.0")
    if not isinstance(version, str) or not re.match(r"^[0-9A-Za-z.\-+]+$", version):
        raise ContractError(
            f"metadata.promoter.version {version!r} is not a valid version",
            location=where,
            hint="use a version like 1.2.0",
        )
    timeout = raw.get("timeout", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ContractError(
            f"metadata.promoter.timeout {timeout!r} must be a positive number of seconds",
            location=where,
        )
    execution = raw.get("execution", "thread")
    if execution not in _EXECUTION_MODES:
        raise ContractError(
            f"metadata.promoter.execution {execution!r} is not one of {list(_EXECUTION_MODES)}",
            location=where,
            hint='"thread" (the default) enforces the timeout; "inline" is for microsecond code',
        )
    return Settings(
        route=route,
        name=name,
        version=version,
        timeout=float(timeout),
        execution=execution,
        files=_file_globs(raw.get("files", []), where),
        max_file_mb=_max_file_mb(raw.get("max_file_mb", 200.0), where),
        examples=_examples(raw.get("examples", []), where),
        maps=_json_paths(raw, "maps", where),
        records=_json_paths(raw, "records", where),
    )


def _route_and_name(raw: dict[str, Any], where: Location) -> tuple[str | None, str | None]:
    route = raw.get("route")
    if route is not None and (not isinstance(route, str) or not _ROUTE.match(route)):
        raise ContractError(
            f"metadata.promoter.route {route!r} is not a valid route",
            location=where,
            hint="use a path like /churn_score (letters, digits, _ and -)",
        )
    name = raw.get("name")
    if name is not None and (
        not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9\-]*$", name)
    ):
        raise ContractError(
            f"metadata.promoter.name {name!r} is not a valid service name",
            location=where,
            hint="use lower-case letters, digits and dashes, e.g. churn-score",
        )
    return route, name


def _file_globs(globs: Any, where: Location) -> tuple[str, ...]:
    if not isinstance(globs, list) or not all(isinstance(g, str) and g.strip() for g in globs):
        raise ContractError(
            f"metadata.promoter.files {globs!r} must be a list of glob strings",
            location=where,
            hint='e.g. ["data/*.csv", "models/**/*.joblib"], relative to the notebook\'s folder',
        )
    for glob in globs:
        if glob.startswith(("/", "\\")) or ".." in Path(glob).parts:
            raise ContractError(
                f"metadata.promoter.files glob {glob!r} leaves the notebook's folder",
                location=where,
                hint="only files under the notebook's folder travel with the service; read "
                "others from a mounted volume or object storage",
            )
    return tuple(globs)


def _max_file_mb(limit: Any, where: Location) -> float:
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
        raise ContractError(
            f"metadata.promoter.max_file_mb {limit!r} must be a positive number of megabytes",
            location=where,
        )
    return float(limit)


def _examples(raw: Any, where: Location) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list) or not all(
        isinstance(e, dict) and all(isinstance(k, str) for k in e) for e in raw
    ):
        raise ContractError(
            "metadata.promoter.examples must be a list of parameter sets (JSON objects)",
            location=where,
            hint='e.g. "examples": [{"state": "CA"}, {"state": "NY", "top_k": 5}]',
        )
    return tuple(dict(e) for e in raw)


def _json_paths(raw: dict[str, Any], key: str, where: Location) -> tuple[str, ...]:
    paths = raw.get(key, [])
    if not isinstance(paths, list) or not all(
        isinstance(p, str) and JSON_PATH.match(p) for p in paths
    ):
        raise ContractError(
            f"metadata.promoter.{key} must be a list of JSON paths into the response",
            location=where,
            hint='e.g. ["$", "$.counts", "$.rows[*].scores", "$.by_state.*"]',
        )
    return tuple(paths)


def cell_file_line(path: Path, cell_index: int | None) -> int | None:
    """The line of the ``.ipynb`` file where cell ``cell_index`` starts (its ``{``).

    Found by scanning the raw JSON text, so annotations point at the cell in a diff view.
    ``None`` when the index is unknown or the file is not nbformat 4 JSON.
    """
    if cell_index is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    starts = _cell_starts(text)
    return starts[cell_index] if 0 <= cell_index < len(starts) else None


def _cell_starts(text: str) -> list[int]:
    """Lines of the objects in the top-level ``cells`` array of a JSON document."""
    starts: list[int] = []
    stack: list[str] = []
    line = 1
    key: str | None = None  # the last string at depth 1 (a top-level key)
    in_cells = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\n":
            line += 1
        elif char == '"':
            end = index + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if len(stack) == 1:
                key = text[index + 1 : end]
            line += text.count("\n", index, end)
            index = end
        elif char in "[{":
            stack.append(char)
            if len(stack) == 2 and char == "[":
                in_cells = key == "cells"
            elif len(stack) == 3 and char == "{" and in_cells:
                starts.append(line)
        elif char in "]}":
            if stack:
                stack.pop()
            if len(stack) == 1:
                in_cells = False
        index += 1
    return starts
