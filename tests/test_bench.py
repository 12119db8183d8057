"""The benchmark harness (``python -m bench --smoke``) runs end to end and writes its files.

Timings from a smoke run mean nothing, so none is asserted: only that every server answered,
the same JSON came back, and the results, the doc block and the chart were written.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smoke_run_writes_results_doc_and_chart(tmp_path: Path) -> None:
    if shutil.which("promoter", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the promoter console script is not installed next to this Python")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["meta"]["smoke"] is True
    assert data["meta"]["loadgen"] in {"wrk", "python"}
    service = data["services"]["text_statistics"]
    for kind in ("generated", "handwritten", "kernel_gateway"):
        assert service[kind]["requests"] > 0, kind
        assert service[kind]["errors"] == 0, kind
    assert service["same_answer"] == {"handwritten": True, "kernel_gateway": True}
    assert set(data["cli"]) >= {"help", "inspect_static", "inspect_static_json", "convert"}
    assert {t["target"].split(",")[0] for t in data["targets"]} >= {"throughput"}
    # A job of the same route, embedded and on Redis (redis-server is a CI package).
    for mode in ("embedded", "redis"):
        assert data["jobs"][mode]["job"]["p50_ms"] > 0, mode
        assert data["jobs"][mode]["sync"]["p50_ms"] > 0, mode

    doc = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- bench:results:start -->" in doc
    assert "| text_statistics | promoter (generated) |" in doc
    assert "](images/benchmarks.png)" in doc
    assert "| Redis + Celery (1 worker) |" in doc
    assert (tmp_path / "images" / "benchmarks.png").read_bytes().startswith(b"\x89PNG")


def test_python_load_generator_is_used_without_wrk(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import _load

    monkeypatch.setattr(_load.shutil, "which", lambda name: None)
    assert _load.loadgen_name("auto") == "python"
    with pytest.raises(RuntimeError, match="wrk is not installed"):
        _load.loadgen_name("wrk")


def test_long_notebook_has_the_requested_size_and_one_parameters_and_response_cell() -> None:
    from bench import _bignotebook

    notebook = _bignotebook.build(500)
    tags = [tag for cell in notebook.cells for tag in cell.metadata.get("tags", [])]
    assert len(notebook.cells) == 500
    assert tags.count("parameters") == 1
    assert tags.count("response") == 1


def test_python_load_generator_reports_requests_and_errors(tmp_path: Path) -> None:
    """bench._pyload against a stdlib server that refuses POST: every answer is an error."""
    from bench import _load
    from bench._procs import ServerPool

    with ServerPool(tmp_path) as pool:
        server = pool.start(
            "http.server",
            [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
            ROOT,
        )
        pool.wait_ready(server, "/README.md", timeout=30)
        result = _load.measure("python", server.base_url + "/", {"a": 1}, 2, 0.5, 5)
    assert result["requests"] > 0
    assert result["errors"] == result["requests"]  # 501 Unsupported method
