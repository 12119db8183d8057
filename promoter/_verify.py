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
import asyncio, importlib, inspect, json, sys, time, traceback
sys.path.insert(0, sys.argv[1])
loop = asyncio.new_event_loop()  # one loop for an async setup() and every async run()
wait = lambda value: loop.run_until_complete(value) if inspect.isawaitable(value) else value
from app.jsonable import to_jsonable
results = {}
pipelines = []
for package, slug, model, route, requests in json.loads(sys.argv[2]):
    try:
        pipeline = importlib.import_module(package + ".pipeline")
        models = importlib.import_module(package + ".models")
        wait(pipeline.setup())
        pipelines.append(pipeline)
        request_class = [v for k, v in vars(models).items() if k.endswith("Request")][0]
        answers, problems = [], []
        begin = time.monotonic()
        for request in requests:
            answer = to_jsonable(wait(pipeline.run(request_class.model_validate(request))))
            try:
                getattr(models, model).model_validate(answer)
                problems.append(None)
            except Exception as exc:
                problems.append(str(exc))
            answers.append(answer)
        seconds = (time.monotonic() - begin) / len(requests)
        results[slug] = {
            "answers": answers,
            "model_errors": problems,
            "answer": answers[0],
            "route": route,
            "seconds": seconds,
        }
    except BaseException:
        results[slug] = {"error": traceback.format_exc()}  # whole: a library may be deep
app_error = None
if all("error" not in r for r in results.values()):
    # The whole app, as uvicorn loads it: a name of the notebook that replaces one of the
    # generated code's shows here. Its setup already ran above, so the app's start-up only
    # marks it ready; each route then answers the default request a second time.
    try:
        for pipeline in pipelines:
            if not inspect.iscoroutinefunction(pipeline.run):
                # An async run's objects (an httpx.AsyncClient) belong to the event loop
                # they were made on: the app's loop sets them up again for itself.
                pipeline.setup = lambda: None
        # Imported after: app.main takes each pipeline's setup when it is imported.
        main = importlib.import_module("app.main")
        from fastapi.testclient import TestClient
        with TestClient(main.app, raise_server_exceptions=False) as client:
            routes = {getattr(r, "path", None) for r in main.app.routes}
            for slug, result in results.items():
                if result["route"] not in routes:
                    raise LookupError("app.main serves no route " + result["route"])
                if result["seconds"] > SLOW:
                    continue  # a second run would double a slow notebook's verification
                begin = time.monotonic()
                reply = client.post(result["route"], json={})
                while reply.status_code == 503 and time.monotonic() - begin < 30:
                    time.sleep(0.05)
                    reply = client.post(result["route"], json={})
                try:
                    body = reply.json()
                except ValueError:
                    body = reply.text[:300]
                result["http"] = {"status": reply.status_code, "body": body}
    except BaseException:
        app_error = traceback.format_exc(limit=-6)
print(MARKER + json.dumps({"results": results, "app_error": app_error}))
""".replace("MARKER", repr(_MARKER)).replace("SLOW", "10.0")


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
        [package, nb.stem, model, nb.route, [{}, *(r for r, _ in examples.get(nb.stem, []))]]
        for nb, package, model, _ in notebooks
    ]
    found = _run_script(folder, spec, timeout)
    results = found["results"]
    checks = []
    for nb, package, _, expected in notebooks:
        result = results[nb.stem]
        if "error" in result:
            raise _pipeline_error(folder, package, nb, result["error"])
        wanted = [expected, *(answer for _, answer in examples.get(nb.stem, []))]
        names = ["response", *(f"response to example {n}" for n in range(1, len(wanted)))]
        compared = zip(names, result["answers"], wanted, strict=True)
        differences = [first_difference(a, e, name) for name, a, e in compared]
        difference = next((d for d in differences if d is not None), None)
        problem = next((p for p in result["model_errors"] if p is not None), None)
        checks.append(Fidelity(nb.stem, difference is None, difference, problem))
    if found["app_error"]:
        raise _app_error(found["app_error"])
    for (nb, _, _, _), check in zip(notebooks, checks, strict=True):
        _check_second_answer(nb, results[nb.stem], check)
    return checks


def _run_script(folder: Path, spec: list[Any], timeout: float) -> Any:
    """Run the verification script in a fresh interpreter; its JSON report."""
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
    return json.loads(line[len(_MARKER) :])


def _app_error(trace: str) -> VerificationError:
    lines = [ln for ln in trace.strip().splitlines() if ln.strip()]
    return VerificationError(
        f"the generated app (app/main.py) cannot start: {lines[-1] if lines else trace}",
        hint="a name in the notebook may clash with the generated code; rename the notebook "
        "or the name, and please report it with the notebook",
    )


#: Statuses of the app's second answer that say nothing about the notebook's code: no API key
#: (settings from the environment), still starting, over the route's timeout.
_INCONCLUSIVE = {401, 403, 503, 504}


def _check_second_answer(nb: Notebook, result: dict[str, Any], check: Fidelity) -> None:
    """The app's answer to a second default request must be the first one (isolation)."""
    http = result.get("http")
    if http is None or http["status"] in _INCONCLUSIVE:
        return
    where = nb.at(nb.response_cell)
    if http["status"] != 200:
        raise VerificationError(
            f"the generated service answers its second default request with "
            f"{http['status']} ({_short(http['body'])}), though the first one succeeded",
            location=where,
            hint="the handler likely changes state the requests share (see DESIGN.md: "
            "requests never see each other), or a notebook name clashes with the generated "
            "code",
        )
    second = first_difference(http["body"], result["answer"])
    if second is not None and check.matches and not nb.settings.shared:
        raise VerificationError(
            f"a second request with the same parameters answered differently ({second}): "
            "the handler keeps state between requests",
            location=where,
            hint="keep per-request values in local variables, or declare the setup names "
            'requests share on purpose in metadata.promoter.shared (e.g. "shared": ["cache"])',
        )


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return text if len(text) <= 200 else text[:199] + "…"


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
        hint=_hint(last, folder, nb),
    )


_SELF_CONTAINED = (
    "the cell likely depends on a cell that is not promoted (tagged `skip`, or after the "
    "response cell), or on notebook state; make the promoted cells self-contained"
)


def _hint(last: str, folder: Path, nb: Notebook) -> str:
    """What to do about the service's error ``last`` (the traceback's last line)."""
    local = re.match(r"ModuleNotFoundError: No module named '([\w.]+)'", last)
    if local:
        top = local.group(1).split(".")[0]
        root = nb.path.parent.resolve()
        glob = f"{top}.py" if (root / f"{top}.py").is_file() else f"{top}/**/*.py"
        if (root / f"{top}.py").is_file() or (root / top).is_dir():
            return (
                f"{top} is a local module of the notebook's folder, and Python files travel "
                f'only when named: add it to metadata.promoter.files, e.g. "files": ["{glob}"]'
            )
    if last.startswith("FileNotFoundError"):
        root = nb.path.parent.resolve()
        for word in re.findall(r"[\w./\\-]+", last.split(":", 1)[-1]):
            rel = Path(word).relative_to(folder) if Path(word).is_relative_to(folder) else None
            rel = rel or (Path(word) if not Path(word).is_absolute() else None)
            if rel is not None and (root / rel).is_file():
                return (
                    f"the notebook's run was not seen reading {rel.as_posix()} (readers written "
                    "in C, such as pyarrow's for parquet, open files unseen), so the service "
                    "does not have it: name it in metadata.promoter.files, e.g. "
                    f'"files": ["{rel.as_posix()}"]'
                )
    return _SELF_CONTAINED


def _cell_of(pipeline: Path, line: int, nb: Notebook) -> tuple[Location, str]:
    source = pipeline.read_text(encoding="utf-8").splitlines()
    statement = source[line - 1].strip() if 0 < line <= len(source) else ""
    for number in range(min(line, len(source)), 0, -1):
        match = re.search(r"# .*cell (\d+)(?: \(id ([^)]+)\))?", source[number - 1])
        if match:
            # ``cellref`` markers count cells from 1 and carry the id when it is printable.
            index, cell_id = int(match.group(1)) - 1, match.group(2)
            cell = next((c for c in nb.cells if c.index == index or c.id == cell_id), None)
            if cell is not None:
                offset = _line_in_cell(cell.source, statement)
                return nb.at(cell, offset), statement
    # Above the first marker: the imports, gathered from every cell; the cell that wrote it.
    for cell in nb.cells:
        offset = _line_in_cell(cell.source, statement) if cell.cell_type == "code" else None
        if offset is not None:
            return nb.at(cell, offset), statement
    return Location(notebook=nb.path), statement


def _line_in_cell(source: str, statement: str) -> int | None:
    lines = source.splitlines()
    for uncommented in (False, True):  # the generated code drops a trailing comment
        for number, text in enumerate(lines, start=1):
            code = text.split("#", 1)[0] if uncommented else text
            if statement and code.strip() == statement:
                return number
    return None
