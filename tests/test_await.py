"""Top-level ``await`` is promoted: ``run``/``setup`` become ``async def`` on the event loop.

DESIGN.md section 1 ("Top-level await"). The end-to-end test serves a notebook that awaits an
async HTTP client against a stub server on 127.0.0.1 answering after 200 ms, and measures how
well 100 concurrent requests overlap.
"""

from __future__ import annotations

import ast
import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from promoter import inspect
from tests.helpers import run_cli, send_json, write_notebook

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "real" / "await_quote.ipynb"
CORPUS = Path(__file__).resolve().parent / "corpus"
DELAY = 0.2  # seconds the stub takes per answer
CONCURRENT = 100


class _Quotes(BaseHTTPRequestHandler):
    """A slow quote service: every answer takes DELAY seconds."""

    def do_GET(self) -> None:
        time.sleep(DELAY)
        symbol = parse_qs(urlparse(self.path).query).get("symbol", ["?"])[0]
        send_json(self, {"symbol": symbol, "price": 10.5 + len(symbol)})

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # read by listen() in __init__: 100 connections arrive at once


@pytest.fixture
def quotes(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The stub quote server on 127.0.0.1; its URL reaches the kernel and the service by env."""
    server = _Server(("127.0.0.1", 0), _Quotes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("QUOTES_URL", url)
    yield url
    server.shutdown()
    server.server_close()


def _functions(pipeline: str) -> dict[str, type[ast.AST]]:
    return {
        node.name: type(node)
        for node in ast.parse(pipeline).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_top_level_await_makes_run_async() -> None:
    result = inspect(CORPUS / "async_await.ipynb", execute=False)
    assert result.extraction.is_async
    assert not result.extraction.setup_is_async
    handler = "\n".join(block.code for block in result.extraction.handler)
    assert "results = await asyncio.gather(" in handler


def test_await_inside_a_def_only_stays_sync(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import asyncio\nasync def f():\n    await asyncio.sleep(0)\n    return 1", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "y = x\ny", ["response"]),
    )
    result = inspect(path, execute=False)
    assert not result.extraction.setup_is_async
    assert not result.extraction.is_async


def test_an_awaiting_response_expression_makes_run_async(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import asyncio", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "async def f(v):\n    return {'v': v}", []),
        ("code", "await f(x)", ["response"]),
    )
    result = inspect(path, execute=False)
    assert result.extraction.is_async
    assert not result.extraction.setup_is_async


def test_async_with_in_setup_makes_setup_async(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import asyncio\nlock = asyncio.Lock()\nasync with lock:\n    n = 2", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "{'v': x * n}", ["response"]),
    )
    result = inspect(path, execute=False)
    assert result.extraction.setup_is_async
    assert not result.extraction.is_async


async def _concurrent(url: str, count: int) -> tuple[float, list[httpx.Response]]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(client.post("/await_quote", json={"symbol": f"S{i % 10}"}) for i in range(count))
        )
        return time.perf_counter() - started, list(replies)


@pytest.mark.slow
def test_awaited_io_of_concurrent_requests_overlaps(
    tmp_path: Path, quotes: str, serve_folder
) -> None:
    out = tmp_path / "svc"
    result = run_cli("convert", FIXTURE, "-o", out)
    assert result.returncode == 0, result.output
    pipeline = (out / "app" / "pipeline.py").read_text()
    functions = _functions(pipeline)
    assert functions["run"] is ast.AsyncFunctionDef, pipeline
    assert functions["setup"] is ast.AsyncFunctionDef, pipeline
    assert "print(" not in pipeline  # the progress line is a side effect: not promoted
    server = serve_folder(out)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        reply = client.post("/await_quote", json={"symbol": "ACME", "quantity": 3})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"symbol": "ACME", "total": 43.5}
    elapsed, replies = asyncio.run(_concurrent(server.url, CONCURRENT))
    assert [r.status_code for r in replies] == [200] * CONCURRENT
    assert {r.json()["symbol"] for r in replies} == {f"S{i}" for i in range(10)}
    serial = CONCURRENT * DELAY
    factor = elapsed / serial
    print(
        f"{CONCURRENT} concurrent requests awaiting {DELAY * 1000:.0f} ms each: "
        f"{elapsed:.2f} s vs {serial:.0f} s serial (factor {factor:.3f})"
    )
    assert factor < 0.25


@pytest.mark.slow
def test_an_async_run_past_the_timeout_is_a_504(
    tmp_path: Path, serve_folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_notebook(
        tmp_path / "sleepy.ipynb",
        ("code", "import asyncio", []),
        ("code", "delay = 0.0  # Seconds to wait", ["parameters"]),
        ("code", "await asyncio.sleep(delay)", []),
        ("code", "{'slept': delay}", ["response"]),
    )
    out = tmp_path / "svc"
    result = run_cli("convert", path, "-o", out)
    assert result.returncode == 0, result.output
    monkeypatch.setenv("SERVICE_TIMEOUT", "0.5")
    server = serve_folder(out)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        slow = client.post("/sleepy", json={"delay": 30})
        assert slow.status_code == 504, slow.text
        assert "error_id" in slow.json()
        fast = client.post("/sleepy", json={"delay": 0.01})
        assert fast.status_code == 200, fast.text
        assert fast.json() == {"slept": 0.01}


@pytest.mark.slow
def test_a_serialised_async_route_takes_an_asyncio_lock(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "serial.ipynb",
        ("code", "import asyncio\nimport random", []),
        ("code", "seed = 1", ["parameters"]),
        ("code", "random.seed(seed)\nawait asyncio.sleep(0)\nvalue = random.random()", []),
        ("code", "{'value': value}", ["response"]),
    )
    result = run_cli("convert", path, "-o", tmp_path / "svc")
    assert result.returncode == 0, result.output
    pipeline = (tmp_path / "svc" / "app" / "pipeline.py").read_text()
    assert "promoter_lock = promoter_asyncio.Lock()" in pipeline  # a thread lock would block
    assert "async with promoter_lock:\n        return await promoter_run(" in pipeline
    assert _functions(pipeline)["promoter_run"] is ast.AsyncFunctionDef
