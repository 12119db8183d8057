"""The real-world corpus: notebooks written the way data scientists write them (issue 11).

Each notebook of ``tests/real_world`` lives in its own small project folder with its data and
model files, and goes through the real CLI with the outcome ``tests/real_world/expected.json``
(and the table in its README) gives it: ``serves`` (converted from another working directory,
the project folder then deleted, the service started with uvicorn answers as papermill did) or
``error`` (exit code, the notebook and cell named, no traceback). ``promoter check`` runs once
over the whole folder and must agree.

The corpus is copied per test session and ``make_data.py`` writes its data and models again
there, so pickles, parquet files and joblib models match the installed libraries.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from promoter.building.verify import first_difference
from tests.helpers import golden, run_cli, send_json

CORPUS = Path(__file__).resolve().parent / "real_world"
EXPECTED: list[dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())["notebooks"]
SERVES = [e for e in EXPECTED if e["outcome"] == "serves"]
ERRORS = [e for e in EXPECTED if e["outcome"] == "error"]
RATES = {"USD": 1.0825, "GBP": 0.8561, "JPY": 169.42}
# A drawing or printing call left in the service (they are side effects, not promoted).
DRAWING = re.compile(r"\b(plt|sns|ax|fig|mpl)\.|\b(print|display)\(")


def _id(entry: dict[str, Any]) -> str:
    return str(entry["notebook"]).removesuffix(".ipynb")


class _Rates(BaseHTTPRequestHandler):
    """The rates service fx_rates/convert.ipynb asks (a stub: fixed rates)."""

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/rates":
            base = parse_qs(url.query).get("base", ["EUR"])[0]
            answer: dict[str, Any] = {"base": base, "rates": RATES}
        else:
            answer = {"source": "stub"}
        send_json(self, answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def rates(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The stub rates service on 127.0.0.1; kernels and services find it by RATES_URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rates)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("RATES_URL", url)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of tests/real_world with its data files and models written by this environment."""
    root = tmp_path_factory.mktemp("corpus") / "real_world"
    shutil.copytree(CORPUS, root)
    subprocess.run([sys.executable, str(root / "make_data.py"), str(root)], check=True)
    return root


def _shape(value: Any) -> Any:
    """The JSON structure of ``value``: keys and types, not values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value[:1]]
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, int | float) else type(value).__name__


def _assert_clear(output: str) -> None:
    for text in ("Traceback", "bug in promoter", "internal error"):
        assert text not in output, output


def test_the_table_lists_every_notebook_once() -> None:
    listed = [e["notebook"] for e in EXPECTED]
    found = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.ipynb"))
    assert sorted(listed) == found
    assert len(found) >= 15
    table = (CORPUS / "README.md").read_text()
    for entry in EXPECTED:
        row = next(ln for ln in table.splitlines() if ln.startswith(f"| `{entry['notebook']}`"))
        assert f"`{entry['outcome']}`" in row, row
        if entry["outcome"] == "error":
            assert f"exit {entry['exit_code']}" in row, row


@pytest.mark.slow
@pytest.mark.parametrize("entry", SERVES, ids=_id)
def test_a_real_world_notebook_serves_what_papermill_answered(
    entry: dict[str, Any], corpus: Path, rates: str, tmp_path: Path, serve_folder: Any
) -> None:
    project_name, _, inner = str(entry["notebook"]).partition("/")
    project = tmp_path / project_name
    shutil.copytree(corpus / project_name, project)
    out = tmp_path / "built" / "service"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = run_cli("convert", project / inner, "-o", out, cwd=elsewhere)

    assert result.returncode == 0, result.output
    _assert_clear(result.output)
    for name in entry["files"]:
        assert (out / name).read_bytes() == (project / name).read_bytes(), name
    pipeline = (out / "app" / "pipeline.py").read_text()
    assert not DRAWING.search(pipeline), pipeline
    expected = golden(out)["response"]  # what papermill's run of the notebook answered
    shutil.rmtree(project)  # the service needs nothing from the notebook's folder
    server = serve_folder(out)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post(str(entry["route"]), json={})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if entry["check"] == "golden":
            assert first_difference(body, expected) is None, (body, expected)
        else:
            assert _shape(body) == _shape(expected)
        for key, value in entry["fields"].items():
            assert body[key] == value, (key, body)
        other = entry.get("other")
        if other:
            second = client.post(str(entry["route"]), json=other["request"])
            assert second.status_code == 200, second.text
            for key, value in other["fields"].items():
                assert second.json()[key] == value, (key, second.json())


@pytest.mark.slow
@pytest.mark.parametrize("entry", ERRORS, ids=_id)
def test_a_real_world_notebook_that_cannot_serve_says_why(
    entry: dict[str, Any], corpus: Path, tmp_path: Path
) -> None:
    notebook = corpus / entry["notebook"]
    out = tmp_path / "service"

    result = run_cli("convert", notebook, "-o", out, cwd=tmp_path)

    assert result.returncode == entry["exit_code"], result.output
    assert f"error: {notebook}" in result.stderr, result.output
    if entry["cell"] is not None:
        assert f"{notebook}, cell {entry['cell']} " in result.stderr, result.output
    assert entry["message"] in result.stderr, result.output
    assert "hint:" in result.stderr
    _assert_clear(result.output)
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # every notebook of the corpus (29), two at a time
def test_check_on_the_corpus_folder_agrees(corpus: Path, rates: str) -> None:
    result = run_cli("check", corpus, "--json", "-j", "2", cwd=corpus.parent, timeout=1500)

    assert result.returncode == 1, result.output
    _assert_clear(result.stderr)
    found = {
        Path(n["notebook"]).relative_to(corpus).as_posix(): n
        for n in json.loads(result.stdout)["notebooks"]
    }
    for entry in EXPECTED:
        report = found[entry["notebook"]]
        if entry["outcome"] == "serves":
            assert report["status"] == "passed", report
        elif entry["cell"] is None:
            assert report["status"] == "skipped", report  # no `response` tag: not promoter's
        else:
            assert report["status"] == "failed", report
            failed = [c for c in report["checks"] if c["status"] == "failed"]
            assert [c["cell_number"] for c in failed] == [entry["cell"]], failed
            assert entry["message"] in failed[0]["message"], failed
