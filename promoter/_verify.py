"""Prove the generated pipeline reproduces the notebook (the fidelity guarantee).

The built service is imported in a fresh Python process: each notebook's ``setup()`` runs, then
``run()`` with the default request and with each example request; every JSON answer is compared
with what the papermill-executed notebook returned for it, and validated against the generated
response model.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promoter._exceptions import Location, VerificationError
from promoter._notebook import Notebook

__all__ = ["Fidelity", "first_difference", "verify_service"]

_MARKER = "__PROMOTER_VERIFY__"
_SCRIPT = """
import asyncio, inspect, json, sys, traceback
sys.path.insert(0, sys.argv[1])
loop = asyncio.new_event_loop()  # one loop for an async setup() and every async run()
wait = lambda value: loop.run_until_complete(value) if inspect.isawaitable(value) else value
from app.jsonable import to_jsonable
results = {}
for package, slug, model, requests in json.loads(sys.argv[2]):
    try:
        pipeline = __import__(package + ".pipeline", fromlist=["pipeline"])
        models = __import__(package + ".models", fromlist=["models"])
        wait(pipeline.setup())
        request_class = [v for k, v in vars(models).items() if k.endswith("Request")][0]
        answers, problems = [], []
        for request in requests:
            answer = to_jsonable(wait(pipeline.run(request_class.model_validate(request))))
            try:
                getattr(models, model).model_validate(answer)
                problems.append(None)
            except Exception as exc:
                problems.append(str(exc))
            answers.append(answer)
        results[slug] = {"answers": answers, "model_errors": problems}
    except BaseException:
        results[slug] = {"error": traceback.format_exc(limit=-6)}
print(MARKER + json.dumps(results))
""".replace("MARKER", repr(_MARKER))


@dataclass(frozen=True)
class Fidelity:
    """How one notebook's generated pipeline compares with the notebook."""

    slug: str
    matches: bool
    difference: str | None
    model_error: str | None


def verify_service(
    folder: Path,
    notebooks: list[tuple[Notebook, str, str, Any]],
    timeout: float = 600,
    *,
    examples: dict[str, list[tuple[dict[str, Any], Any]]] | None = None,
) -> list[Fidelity]:
    """Run every generated pipeline with its defaults (and examples) and compare with the notebook.

    Args:
        folder: The built service folder.
        notebooks: ``(notebook, package, response model name, expected JSON)`` per notebook.
        timeout: Seconds the whole check may take.
        examples: ``(request, expected JSON)`` per example parameter set, by notebook stem.

    Raises:
        VerificationError: A generated pipeline raised (naming the notebook cell), or the check
            could not run.
    """
    examples = examples or {}
    spec = [
        [package, nb.stem, model, [{}, *(r for r, _ in examples.get(nb.stem, []))]]
        for nb, package, model, _ in notebooks
    ]
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(folder), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(folder),
        )
    except subprocess.TimeoutExpired:
        raise VerificationError(
            f"the generated service did not answer its default request within {timeout:g} s"
        ) from None
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(_MARKER)), None)
    if line is None:
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])[:500]
        raise VerificationError(
            f"the generated service could not be imported: {tail}",
            hint="this is likely a promoter bug; please report it with the notebook",
        )
    results = json.loads(line[len(_MARKER) :])
    checks = []
    for nb, package, _, expected in notebooks:
        result = results[nb.stem]
        if "error" in result:
            raise _pipeline_error(folder, package, nb, result["error"])
        wanted = [expected, *(answer for _, answer in examples.get(nb.stem, []))]
        names = ["response", *(f"response to example {n}" for n in range(1, len(wanted)))]
        found = zip(names, result["answers"], wanted, result["model_errors"], strict=True)
        differences = [first_difference(a, e, name) for name, a, e, _ in found]
        difference = next((d for d in differences if d is not None), None)
        problem = next((p for p in result["model_errors"] if p is not None), None)
        checks.append(Fidelity(nb.stem, difference is None, difference, problem))
    return checks


def first_difference(actual: Any, expected: Any, path: str = "response") -> str | None:
    """Where two JSON values first differ (floats to 1e-9 relative), or ``None``."""
    if isinstance(expected, float) and isinstance(actual, int | float):
        close = math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
        return None if close else f"{path}: {actual!r} != {expected!r}"
    if isinstance(expected, dict) and isinstance(actual, dict):
        if actual.keys() != expected.keys():
            return f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            found = first_difference(actual[key], expected[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return f"{path}: {len(actual)} items != {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            found = first_difference(a, e, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if actual == expected else f"{path}: {actual!r} != {expected!r}"


def _pipeline_error(folder: Path, package: str, nb: Notebook, trace: str) -> VerificationError:
    pipeline = folder / package.replace(".", "/") / "pipeline.py"
    lines = [ln for ln in trace.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "unknown error"
    numbers = re.findall(rf'File "{re.escape(str(pipeline))}", line (\d+)', trace)
    location = Location(notebook=nb.path)
    statement = ""
    if numbers:
        location, statement = _cell_of(pipeline, int(numbers[-1]), nb)
    return VerificationError(
        f"the generated service fails where the notebook did not: {last}"
        + (f" (at `{statement}`)" if statement else ""),
        location=location,
        hint="the cell likely depends on a cell that is not promoted (tagged `skip`, or after "
        "the response cell), or on notebook state; make the promoted cells self-contained",
    )


def _cell_of(pipeline: Path, line: int, nb: Notebook) -> tuple[Location, str]:
    source = pipeline.read_text(encoding="utf-8").splitlines()
    statement = source[line - 1].strip() if 0 < line <= len(source) else ""
    for number in range(min(line, len(source)), 0, -1):
        match = re.search(r"# .*cell (\d+)", source[number - 1])
        if match:
            index = int(match.group(1))
            cell = next((c for c in nb.cells if c.index == index), None)
            if cell is not None:
                offset = _line_in_cell(cell.source, statement)
                return nb.at(cell, offset), statement
    return Location(notebook=nb.path), statement


def _line_in_cell(source: str, statement: str) -> int | None:
    for number, text in enumerate(source.splitlines(), start=1):
        if statement and text.strip() == statement:
            return number
    return None
