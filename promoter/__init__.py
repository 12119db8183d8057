"""promoter: turn a tagged Jupyter notebook into a tested FastAPI service.

The pipeline, one module per stage::

    _notebook   read and validate the notebook, give each cell its role
    _parameters the request schema, from the `parameters` cell
    _execute    run the notebook with papermill, capture the response value
    _response   the response schema, from the captured value
    _extract    setup and handler code, from the promoted cells
    _render     the service files, from the Jinja2 templates
    _output     write the service folder atomically, never over a user's edit
    _verify     the generated pipeline reproduces the notebook

``inspect`` and ``convert`` (in ``_api``) run the stages, ``check`` (in ``_check``) runs them for
CI; the CLI, the JupyterLab extension and the pytest plugin are thin layers over them.
"""

from promoter._api import Conversion, Inspection, convert, inspect
from promoter._check import CheckReport, check
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

__version__ = "0.1.0"

__all__ = [
    "CellSyntaxError",
    "CheckReport",
    "ContractError",
    "Conversion",
    "EditedFileError",
    "ExecutionError",
    "Inspection",
    "Location",
    "NotebookError",
    "NotebookReadError",
    "OutputError",
    "ParameterError",
    "PromoterError",
    "ResponseError",
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
