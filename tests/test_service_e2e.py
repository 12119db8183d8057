"""Generated services, started with uvicorn and called over real HTTP, answer what the notebook
answers when papermill runs it with the same parameters."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from promoter.building.verify import first_difference
from tests.helpers import EXAMPLE_NAMES, EXAMPLES, golden, run_cli

# The first test of a run converts every example (conftest's `converted`), each proven in its
# own environment: that setup counts against the first test's timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

OTHER_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "iris_classifier": [
        {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3},
        {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 4.2, "petal_width": 1.5},
    ],
    "text_statistics": [
        {"text": "The cat sat. The dog ran! Did it?", "top_n": 2},
        {"text": "A a a b", "stopwords": [], "lowercase": False},
    ],
    "loan_calculator": [
        {"principal": 100000.0, "annual_rate": 0.03, "years": 10},
        {"extra_payment": 500.0, "years": 15},
    ],
    "shipping_quote": [
        {"weight_kg": 12.0, "service": "express", "destination_zone": 7, "insured": True},
        {"items": ["a", "b", "c"], "coupon": "SAVE10", "service": "overnight"},
    ],
}


_PAPERMILL = """
import json, sys
from promoter.running.execute import execute
from promoter.reading.notebook import read_notebook
from promoter.analysis.parameters import infer_request
from promoter.reading.source import response_expression
notebook = read_notebook(sys.argv[1])
names = [p.name for p in infer_request(notebook).parameters]
run = execute(notebook, response_expression(notebook), names, json.loads(sys.argv[2]))
print(json.dumps(run.response))
"""


def papermill_answer(name: str, parameters: dict[str, Any]) -> Any:
    """What papermill's run of the notebook returns (in a child process, like a user's run)."""
    path = str(EXAMPLES / f"{name}.ipynb")
    proc = subprocess.run(
        [sys.executable, "-c", _PAPERMILL, path, json.dumps(parameters)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_service_matches_papermill(name: str, converted: dict[str, Path], serve_folder) -> None:
    server = serve_folder(converted[name])
    cases = [golden(converted[name])["request"], *OTHER_PARAMETERS[name]]
    for parameters in cases:
        response = httpx.post(f"{server.url}/{name}", json=parameters, timeout=30)
        assert response.status_code == 200, response.text
        expected = papermill_answer(name, parameters)
        assert first_difference(response.json(), expected) is None, parameters


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_generated_tests_and_lint_pass(name: str, converted: dict[str, Path]) -> None:
    folder = converted[name]
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    for check in (["check", "."], ["format", "--check", "."]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *check], cwd=folder, capture_output=True, text=True
        )
        assert lint.returncode == 0, lint.stdout


def test_operations_and_errors(converted: dict[str, Path], serve_folder) -> None:
    server = serve_folder(converted["shipping_quote"])
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    bad = httpx.post(server.url + "/shipping_quote", json={"weight_kg": -1, "servise": "x"})
    assert bad.status_code == 422
    locations = {tuple(error["loc"]) for error in bad.json()["detail"]}
    assert locations == {("body", "weight_kg"), ("body", "servise")}
    too_big = httpx.post(server.url + "/shipping_quote", content=b"x" * 2_000_000)
    assert too_big.status_code == 413
    schema = httpx.get(server.url + "/openapi.json").json()
    assert "ShippingQuoteRequest" in schema["components"]["schemas"]


def test_isolation_under_concurrency(converted: dict[str, Path], serve_folder) -> None:
    """200 requests, 16 at a time, each with its own text: each gets its own answer."""
    server = serve_folder(converted["text_statistics"])

    async def call(client: httpx.AsyncClient, gate: asyncio.Semaphore, n: int) -> tuple[int, Any]:
        text = " ".join(f"{_letters(n)}z{_letters(i)}" for i in range(n % 40 + 1)) + "."
        async with gate:
            response = await client.post("/text_statistics", json={"text": text, "top_n": 1})
        return n, response.json()

    async def main() -> list[tuple[int, Any]]:
        gate = asyncio.Semaphore(16)
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
            return await asyncio.gather(*(call(client, gate, n) for n in range(200)))

    for n, answer in asyncio.run(main()):
        assert answer["word_count"] == n % 40 + 1
        assert answer["top_words"][0]["word"].startswith(f"{_letters(n)}z")


def _letters(number: int) -> str:
    return "".join(chr(ord("a") + int(digit)) for digit in str(number))


def test_several_notebooks_one_service(tmp_path: Path, serve_folder) -> None:
    out = tmp_path / "svc"
    notebooks = [EXAMPLES / "text_statistics.ipynb", EXAMPLES / "loan_calculator.ipynb"]
    result = run_cli("convert", *notebooks, "-o", out, "--k8s")
    assert result.returncode == 0, result.output
    assert (out / "app/text_statistics/pipeline.py").is_file()
    assert (out / "k8s/deployment.yaml").is_file()
    server = serve_folder(out)
    assert httpx.post(server.url + "/text_statistics", json={}).status_code == 200
    assert httpx.post(server.url + "/loan_calculator", json={"years": 2}).json()[-1]["year"] == 2
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=out,
        capture_output=True,
    )
    assert tests.returncode == 0, tests.stdout


def test_regenerating_refuses_to_overwrite_an_edit(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    notebook = EXAMPLES / "text_statistics.ipynb"
    assert run_cli("convert", notebook, "-o", out).returncode == 0
    main = out / "app" / "main.py"
    edited = main.read_text() + "\n# my change\n"
    main.write_text(edited)
    result = run_cli("convert", notebook, "-o", out)
    assert result.returncode == 1 and "app/main.py" in result.stderr
    assert main.read_text() == edited
    forced = run_cli("convert", notebook, "-o", out, "--force", "--json")
    assert forced.returncode == 0, forced.output
    backup = Path(json.loads(forced.stdout)["backup"])
    assert (backup / "app" / "main.py").read_text() == edited
