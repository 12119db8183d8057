"""promoter: turn a tagged Jupyter notebook into a tested FastAPI service.

The pipeline (DESIGN.md section 2), one module per stage, each arrow a library call::

    notebook.ipynb
      │ _notebook   read and validate (nbformat), give each cell its role
      │ _source     cell source as Python (IPython syntax translated), the response expression
      ▼
    Notebook ──► _parameters ──► RequestSchema        (types checked by _types' allow-list)
      │                              │
      ├────────► _extract ◄──────────┘ ──► Extraction (setup and handler code, per cell)
      │            └─ _isolation: what the handler changes that requests share (copy, lock, refuse)
      ▼
    _execute (papermill) ──► Execution ──► _response ──► ResponseSchema
      │        ├─ _files: the data files the run read (audit hook), which travel with the service
      │        └─ _kernel: papermill engine, output capped, leftovers killed (_processes)
      │
      ▼  Inspection (_api.inspect)  ──►  NotebookPlan
    _build: _render (+ _filters, _pins, _resources) ──► staged folder (_output)
            ──► _verify (fresh process, own session: _processes) ──► _determinism
                (the one non-determinism rule)
            ──► tests rendered ──► format ──► lock ──► swap in

The front-ends call that API and nothing below it::

    _api        inspect(), convert()             the library surface
    _cli        promoter inspect/convert/serve/check
    _check      check(): contract, execute, fidelity (through _build), drift
                  with _discover (notebooks, services), _pool (worker processes),
                  _reports (GitHub annotations, JUnit XML, HTML)
    _serve      promoter serve (regenerate on save)
    _jupyter    the JupyterLab extension's REST endpoints (job queue, roles, Try it)
                  with _jupyter_worker (one inspect/convert run per process)
    _pytest_plugin  pytest --promoter

``_exceptions`` holds the one error tree; ``_lazy`` keeps ``import nbformat`` fast.
"""

from promoter._api import Conversion, Finding, Inspection, convert, inspect
from promoter._build import Build
from promoter._check import CHECKS, CheckReport, NotebookResult, Outcome, Status, check
from promoter._exceptions import (
    CellSyntaxError,
    ContractError,
    EditedFileError,
    ExecutionError,
    Location,
    NotebookError,
    NotebookReadError,
    OutputError,
    ParameterError,
    PromoterError,
    ResponseError,
    UsageError,
    VerificationError,
)
from promoter._execute import Execution, ProgressCallback
from promoter._extract import Block, Dropped, Extraction
from promoter._notebook import Cell, Notebook, Role, Settings
from promoter._parameters import Parameter, RequestSchema
from promoter._response import ModelClass, ModelField, ResponseSchema
from promoter._verify import Fidelity


def __getattr__(name: str) -> str:
    # One place for the version: pyproject.toml, read back from the installed metadata (an editable
    # install included), so the CLI, lock files and the package cannot disagree. Read on first use:
    # importing ``importlib.metadata`` costs more than the rest of ``promoter --help``.
    if name != "__version__":
        raise AttributeError(f"module 'promoter' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("promoter")
    except metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
        version = "0+unknown"
    globals()["__version__"] = version
    return version


# The library functions, the error tree (all of ``_api.__all__`` and ``_exceptions.__all__``),
# and the types reachable from their results: an Inspection's, a Conversion's and a
# CheckReport's parts. tests/test_public_api.py holds the list to that rule.
__all__ = [  # noqa: RUF022 (plain sorted order, as the public-API test wants)
    "Block",
    "Build",
    "CHECKS",
    "Cell",
    "CellSyntaxError",
    "CheckReport",
    "ContractError",
    "Conversion",
    "Dropped",
    "EditedFileError",
    "Execution",
    "ExecutionError",
    "Extraction",
    "Fidelity",
    "Finding",
    "Inspection",
    "Location",
    "ModelClass",
    "ModelField",
    "Notebook",
    "NotebookError",
    "NotebookReadError",
    "NotebookResult",
    "Outcome",
    "OutputError",
    "Parameter",
    "ParameterError",
    "ProgressCallback",
    "PromoterError",
    "RequestSchema",
    "ResponseError",
    "ResponseSchema",
    "Role",
    "Settings",
    "Status",
    "UsageError",
    "VerificationError",
    "__version__",
    "check",
    "convert",
    "inspect",
]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt frontend of the "Promote" button."""
    return [{"src": "labextension", "dest": "promoter-jupyterlab"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The jupyter_server extension that serves the button's REST endpoints."""
    return [{"module": "promoter._jupyter"}]
