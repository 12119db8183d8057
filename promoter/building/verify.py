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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promoter._exceptions import Location, VerificationError
from promoter.reading.notebook import Notebook
from promoter.running.processes import ProcessGroup

__all__ = ["Fidelity", "cell_of", "first_difference", "verify_service"]

_SCRIPT = """
import asyncio, importlib, inspect, json, os, sys, time, traceback
sys.path.insert(0, sys.argv[1])
report = open(sys.argv[3], "a", encoding="utf-8")
def note(**entry):  # where it got to: read when it does not finish in time
    report.write(json.dumps(entry) + "\\n")
    report.flush()
loop = asyncio.new_event_loop()  # one loop for an async setup() and every async run()
wait = lambda value: loop.run_until_complete(value) if inspect.isawaitable(value) else value
from app.jsonable import to_jsonable
results = {}
pipelines = []
for package, slug, model, route, requests in json.loads(sys.argv[2]):
    try:
        note(stage="setup", slug=slug)
        pipeline = importlib.import_module(package + ".pipeline")
        models = importlib.import_module(package + ".models")
        wait(pipeline.setup())
        note(stage="run", slug=slug)
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
try:
    from fastapi.testclient import TestClient
except Exception:  # the service's own environment has no httpx: promoter's proof serves it
    TestClient = None
if TestClient is not None and all("error" not in r for r in results.values()):
    # The whole app, as uvicorn loads it: a name of the notebook that replaces one of the
    # generated code's shows here. Its setup already ran above, so the app's start-up only
    # marks it ready; each route then answers the default request a second time.
    try:
        note(stage="app", slug=None)
        for pipeline in pipelines:
            if not inspect.iscoroutinefunction(pipeline.run):
                # An async run's objects (an httpx.AsyncClient) belong to the event loop
                # they were made on: the app's loop sets them up again for itself.
                pipeline.setup = lambda: None
        # Imported after: app.main takes each pipeline's setup when it is imported.
        main = importlib.import_module("app.main")
        with TestClient(main.app, raise_server_exceptions=False) as client:
            routes = {getattr(r, "path", None) for r in main.app.routes}
            for slug, result in results.items():
                if result["route"] not in routes:
                    raise LookupError("app.main serves no route " + result["route"])
                if result["seconds"] > SLOW:
                    continue  # a second run would double a slow notebook's verification
                note(stage="app", slug=slug)
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
note(report={"results": results, "app_error": app_error})
# Done: a child process or a non-daemon thread the notebook's setup started must not keep this
# process alive. Its children are killed here (one that left the session too), the rest of the
# session by promoter.
def children(pid):
    # /proc, not psutil: the service's own environment has only the service's pins.
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open("/proc/" + entry + "/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found += [int(entry), *children(int(entry))]
    return found
for child in children(os.getpid()):
    try:
        os.kill(child, 9)
    except OSError:
        pass
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
""".replace("SLOW", "10.0")


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
    python: Path | None = None,
) -> list[Fidelity]:
    """Run every generated pipeline with its defaults (and examples) and compare with the notebook.

    Args:
        folder: The built service folder.
        notebooks: ``(notebook, package, response model name, expected JSON)`` per notebook.
        timeout: Seconds the whole check may take.
        examples: ``(request, expected JSON)`` per example parameter set, by notebook stem.
        python: The interpreter to run the service with (the service's own environment);
            promoter's by default.

    Raises:
        VerificationError: A generated pipeline raised (naming the notebook cell), or the check
            could not run.
    """
    examples = examples or {}
    spec = [
        [package, nb.stem, model, nb.route, [{}, *(r for r, _ in examples.get(nb.stem, []))]]
        for nb, package, model, _ in notebooks
    ]
    stems = {nb.stem: nb for nb, _, _, _ in notebooks}
    found = _run_script(folder, spec, timeout, stems, python or Path(sys.executable))
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


def _run_script(
    folder: Path, spec: list[Any], timeout: float, notebooks: dict[str, Notebook], python: Path
) -> Any:
    """Run the verification script in a fresh interpreter; its JSON report.

    The interpreter runs in a session of its own with its output going to a file, not a pipe
    (a grandchild holding a pipe would keep promoter waiting for its lifetime); once it is
    done, or past ``timeout`` or the output limit, its whole session is killed, so nothing the
    notebook's setup started (a child process, a server) outlives the check.
    """
    limit = max(int(nb.settings.max_output_mb * 1_000_000) for nb in notebooks.values())
    with tempfile.TemporaryDirectory(prefix="promoter-verify-") as tmp:
        report, output = Path(tmp) / "report.jsonl", Path(tmp) / "output.txt"
        with output.open("wb") as sink:
            proc = subprocess.Popen(
                [str(python), "-c", _SCRIPT, str(folder), json.dumps(spec), str(report)],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=str(folder),
                start_new_session=True,
            )
            group = ProcessGroup.of(proc.pid)
            try:
                stopped = _wait(proc, output, timeout, limit)
            finally:
                if group is not None:
                    group.kill()
                proc.kill()
                proc.wait()
        entries = _entries(report)
        if "report" in entries[-1]:
            return entries[-1]["report"]
        raise _unfinished(stopped, entries[-1], notebooks, timeout, limit, _tail(output))


def _wait(proc: subprocess.Popen[bytes], output: Path, timeout: float, limit: int) -> str | None:
    """Wait for the verifier: ``None`` when it exited, else why it was stopped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc.wait(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
            return None
        except subprocess.TimeoutExpired:
            pass
        if output.stat().st_size > limit:
            return "output"
        if time.monotonic() >= deadline:
            return "timeout"


def _entries(report: Path) -> list[dict[str, Any]]:
    """The verifier's notes, in order (a first empty one when it wrote none)."""
    entries: list[dict[str, Any]] = [{}]
    try:
        lines = report.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:  # the last line, cut off when the verifier was killed
            break
    return entries


def _tail(output: Path, size: int = 4096) -> str:
    """The last lines of what the verifier printed (without reading all of it)."""
    with output.open("rb") as file:
        file.seek(max(0, output.stat().st_size - size))
        text = file.read().decode("utf-8", errors="replace")
    return " ".join(text.strip().splitlines()[-3:])[:500]


def _unfinished(
    stopped: str | None,
    last: dict[str, Any],
    notebooks: dict[str, Notebook],
    timeout: float,
    limit: int,
    tail: str,
) -> VerificationError:
    """Why the verifier wrote no report: it failed to start, printed too much, or took too long."""
    if stopped is None:
        return VerificationError(
            f"the generated service could not be imported: {tail}",
            hint="this is likely a promoter bug; please report it with the notebook",
        )
    nb = notebooks.get(str(last.get("slug")))
    where = Location(notebook=nb.path) if nb is not None else None
    doing = _STAGES.get(str(last.get("stage")), "starting")
    if stopped == "output":
        return VerificationError(
            f"the generated service printed more than {limit / 1_000_000:g} MB while {doing}, "
            "and was stopped",
            location=where,
            hint="print less in the promoted cells (a service's prints go to its log), or "
            "tag the printing cell `skip`; metadata.promoter.max_output_mb raises the limit",
        )
    return VerificationError(
        f"the generated service was still {doing} after {timeout:g} s, and was stopped",
        location=where,
        hint="the promoted cells may wait for something they started (a child process, a "
        "thread: stop or join it in the cell, or start the thread with daemon=True), or be "
        "slower outside Jupyter; the notebook itself ran them to the end",
    )


#: What the verifier was doing, by the last stage it noted.
_STAGES = {
    "setup": "running its setup (the notebook's setup cells)",
    "run": "answering its default request",
    "app": "starting the app (app/main.py) and answering through it",
}


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
        location, statement = cell_of(pipeline, int(numbers[-1]), nb)
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
        module = (root / f"{top}.py").is_file()
        glob = f"{top}.py" if module else f"{top}/**/*.py"
        if module or (root / top).is_dir():
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


def cell_of(pipeline: Path, line: int, nb: Notebook) -> tuple[Location, str]:
    """The notebook cell and line of line ``line`` of a generated ``pipeline``, and its text."""
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
