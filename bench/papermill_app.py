"""Papermill per request: a tiny FastAPI wrapper that executes the notebook for every request.

The way many teams first "serve" a notebook: each POST runs ``papermill.execute_notebook`` with
the request body as parameters (a fresh kernel every time) and answers with what the notebook's
``response`` cell displayed. Run with ``uvicorn bench.papermill_app:app`` from the repository
root; ``BENCH_NOTEBOOKS`` (default ``examples/notebooks``) is the folder of notebooks served.
"""

import os
import tempfile
from pathlib import Path
from typing import Any

import papermill
from fastapi import FastAPI, HTTPException

NOTEBOOKS = Path(os.environ.get("BENCH_NOTEBOOKS", "examples/notebooks")).resolve()

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/{name}")
def run_notebook(name: str, parameters: dict[str, Any]) -> Any:
    source = NOTEBOOKS / f"{name}.ipynb"
    if not source.is_file():
        raise HTTPException(404, f"no notebook {name}")
    with tempfile.TemporaryDirectory() as tmp:
        executed = papermill.execute_notebook(
            str(source),
            str(Path(tmp) / "out.ipynb"),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(NOTEBOOKS),
        )
    return _response_output(executed)


def _response_output(notebook: Any) -> Any:
    """What the cell tagged ``response`` displayed (JSON if it offered JSON, else its text)."""
    for cell in notebook.cells:
        if "response" in cell.metadata.get("tags", []):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "execute_result":
                    data = output["data"]
                    return data.get("application/json", data.get("text/plain"))
    raise HTTPException(500, "the notebook has no response output")
