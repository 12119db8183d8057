"""promoter: turn a tagged Jupyter notebook into a tested FastAPI service.

The pipeline (DESIGN.md section 2): one folder per stage, each arrow a library call::

    notebook.ipynb
      │ reading/     notebook: read and validate (nbformat), give each cell its role
      │              source: cell source as Python (IPython syntax translated)
      ▼
    Notebook ──► analysis/parameters ──► RequestSchema   (analysis/types: the allow-list)
      │                              │
      ├────────► analysis/extract ◄──┘ ──► Extraction (setup and handler code, per cell)
      │            └─ analysis/isolation: what the handler changes that requests share
      ▼
    running/execute (papermill) ──► Execution ──► analysis/response ──► ResponseSchema
      │        ├─ analysis/files: the data files the run read, which travel with the service
      │        └─ running/kernel: papermill engine, output capped, leftovers killed (processes)
      │
      ▼  Inspection (_api.inspect)  ──►  NotebookPlan
    building/build: render (+ filters, pins, resources) ──► staged folder (output)
            ──► verify (fresh process, own session) ──► analysis/determinism
            ──► tests rendered ──► format ──► lock ──► swap in

The front-ends (``frontends/``) call that API and nothing below it: ``cli`` (promoter
inspect/convert/serve/check), ``check`` with ``discover`` and ``reports`` and ``running/pool``,
``serve``, ``jupyter`` with ``jupyter_handler``, ``jupyter_runs``, ``jupyter_worker`` and
``jupyter_services`` (the JupyterLab extension's REST endpoints and "Try it"), and
``pytest_plugin`` (pytest --promoter).

At the top: ``_api`` (:func:`inspect`, :func:`convert`, the library surface), ``_exceptions``
(the one error tree) and ``_lazy`` (keeps ``import nbformat`` fast). Each stage folder's
docstring says what enters it and what leaves.
"""

from promoter._api import Conversion, Finding, Inspection, convert, inspect
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
from promoter.analysis.extract import Block, Dropped, Extraction
from promoter.analysis.parameters import Parameter, RequestSchema
from promoter.analysis.response import ModelClass, ModelField, ResponseSchema
from promoter.building.build import Build
from promoter.building.verify import Fidelity
from promoter.frontends.check import CHECKS, CheckReport, NotebookResult, Outcome, Status, check
from promoter.reading.notebook import Cell, Notebook, Role, Settings
from promoter.running.execute import Execution, ProgressCallback


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
    return [{"module": "promoter.frontends.jupyter"}]
