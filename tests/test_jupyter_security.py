"""The jupyter_server endpoints against issue 13's attacks, on a real test server.

pytest-jupyter's fixtures are imported into this module only (see tests/test_jupyter_server.py
for why): the server runs in-process, so the annotation canary also proves that the Jupyter
server process itself never evaluates notebook text.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures, scoped to this module)
from tornado.httpclient import HTTPClientError, HTTPResponse
from traitlets.config import Config

from tests.helpers import EXAMPLES, write_notebook

IRIS = EXAMPLES / "iris_classifier.ipynb"
Fetch = Callable[..., Awaitable[HTTPResponse]]
Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest) -> Config:
    """The extension enabled; parametrized indirectly, the parameter is ``allow_hidden``."""
    config = Config({"ServerApp": {"jpserver_extensions": {"promoter": True}}})
    if getattr(request, "param", None) is not None:
        config.ContentsManager.allow_hidden = request.param
    return config


@pytest.fixture
def raw(jp_fetch: Fetch, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Api:
    """``raw(*url_parts, body=, method=)`` -> (status, JSON reply), on the server's loop."""

    async def send(*parts: str, body: str | None, method: str) -> tuple[int, Any]:
        try:
            response = await jp_fetch("promoter", *parts, method=method, body=body)
        except HTTPClientError as exc:
            assert exc.response is not None
            response = exc.response
        return response.code, json.loads(response.body)

    def call(*parts: str, body: str | None = None, method: str = "POST") -> tuple[int, Any]:
        return jp_asyncio_loop.run_until_complete(send(*parts, body=body, method=method))

    return call


@pytest.fixture
def api(raw: Api) -> Api:
    """``api(endpoint, body)`` -> (status, JSON reply), on the server's loop."""

    def call(endpoint: str, body: Any) -> tuple[int, Any]:
        return raw(endpoint, body=json.dumps(body))

    return call


def test_default_output_folder_symlinked_out_of_the_root_is_refused(
    api: Api, jp_root_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(IRIS, jp_root_dir / IRIS.name)
    (jp_root_dir / "iris_classifier_service").symlink_to(outside, target_is_directory=True)
    status, reply = api("convert", {"path": IRIS.name})
    assert status == 403, reply
    assert reply["error"] == "UsageError" and "root" in reply["message"]
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("endpoint", ["inspect", "convert"])
def test_an_annotation_never_runs_in_the_server_process(
    api: Api, jp_root_dir: Path, tmp_path: Path, endpoint: str
) -> None:
    canary = tmp_path / "canary"
    payload = f"__import__('pathlib').Path({str(canary)!r}).write_text('ran') or int"
    write_notebook(
        jp_root_dir / "evil.ipynb",
        ("code", f'x: list["{payload}"] = [1]', ["parameters"]),
        ("code", "{'n': len(x)}", ["response"]),
    )
    status, reply = api(endpoint, {"path": "evil.ipynb"})
    assert status == 422, reply
    assert "forward reference" in reply["message"] and reply["cell_index"] == 0
    assert not canary.exists()


def _hidden_root(root: Path, outside: Path) -> None:
    """A visible notebook, one in a hidden folder, and a visible link to a hidden folder."""
    (root / ".hidden").mkdir()
    for folder in (root, root / ".hidden"):
        write_notebook(
            folder / "nb.ipynb",
            ("code", "x = 1", ["parameters"]),
            ("code", "{'y': x}", ["response"]),
        )
    (root / "visible").symlink_to(root / ".hidden", target_is_directory=True)
    (root / ".hidden_service").symlink_to(outside, target_is_directory=True)


HIDDEN_REQUESTS = [
    ("inspect", {"path": ".hidden/nb.ipynb"}),
    ("inspect", {"path": "visible/nb.ipynb"}),
    ("roles", {"path": ".hidden/nb.ipynb"}),
    ("convert", {"path": ".hidden/nb.ipynb"}),
    ("convert", {"path": "nb.ipynb", "out_dir": ".git/svc"}),
    ("convert", {"path": "nb.ipynb", "out_dir": "sub/../.config/svc"}),
    ("convert", {"path": "nb.ipynb", "out_dir": "visible/svc"}),
    ("jobs", {"action": "convert", "path": "nb.ipynb", "out_dir": ".git/svc"}),
    ("services", {"out_dir": ".hidden"}),
]


@pytest.mark.parametrize(("endpoint", "body"), HIDDEN_REQUESTS)
def test_hidden_paths_are_refused_like_the_contents_api_refuses_them(
    api: Api, jp_root_dir: Path, tmp_path: Path, endpoint: str, body: dict[str, Any]
) -> None:
    """Issue 13: hidden folders were writable through the endpoints though the contents API
    hides them."""
    _hidden_root(jp_root_dir, tmp_path / "outside")
    (tmp_path / "outside").mkdir()
    before = sorted(p.relative_to(jp_root_dir) for p in jp_root_dir.rglob("*"))

    status, reply = api(endpoint, body)

    assert status == 403, reply
    assert reply["error"] == "UsageError" and "hidden" in reply["message"]
    assert "allow_hidden" in reply["hint"]
    assert sorted(p.relative_to(jp_root_dir) for p in jp_root_dir.rglob("*")) == before


@pytest.mark.parametrize("jp_server_config", [True], indirect=True, ids=["allow_hidden"])
def test_a_server_that_allows_hidden_files_lets_the_endpoints_read_them(
    api: Api, jp_root_dir: Path, tmp_path: Path
) -> None:
    _hidden_root(jp_root_dir, tmp_path / "outside")

    status, reply = api("roles", {"path": ".hidden/nb.ipynb"})

    assert status == 200, reply
    assert [c["role"] for c in reply["cells"]] == ["parameters", "response"]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


DEEP = "[" * 100_000 + "]" * 100_000
BAD_BODIES = [
    *((e, DEEP) for e in ("inspect", "convert", "roles", "jobs", "services")),
    *((e, '{"path": ' + DEEP + "}") for e in ("inspect", "convert", "roles", "jobs")),
    *((e, json.dumps({"path": "nb\x00.ipynb"})) for e in ("inspect", "convert", "roles")),
    ("convert", json.dumps({"path": "nb.ipynb", "out_dir": "svc\x00/x"})),
    ("jobs", json.dumps({"action": "convert", "path": "nb.ipynb", "out_dir": "\x00"})),
    ("jobs", json.dumps({"action": "inspect", "path": "\x00"})),
    ("services", json.dumps({"out_dir": "svc\x00"})),
]


@pytest.mark.parametrize(("endpoint", "body"), BAD_BODIES)
def test_a_nul_or_a_deep_body_is_a_400_with_a_json_error(
    raw: Api, jp_root_dir: Path, endpoint: str, body: str
) -> None:
    """Issue 13: NUL in a path and a 100k-deep JSON body answered 500."""
    write_notebook(
        jp_root_dir / "nb.ipynb", ("code", "x = 1", ["parameters"]), ("code", "x", ["response"])
    )

    status, reply = raw(endpoint, body=body)

    assert status == 400, reply
    assert reply["error"] == "UsageError" and reply["message"]
    assert sorted(p.name for p in jp_root_dir.iterdir()) == ["nb.ipynb"]


@pytest.mark.parametrize(
    ("parts", "method"),
    [
        (("services", "\x00"), "DELETE"),
        (("jobs", "\x00"), "GET"),
        (("try", "\x00", "x\x00y"), "GET"),
        (("try", "svc", "\x00"), "POST"),
    ],
)
def test_a_nul_in_a_url_path_is_a_json_error(raw: Api, parts: tuple[str, ...], method: str) -> None:
    status, reply = raw(*parts, method=method, body="{}" if method == "POST" else None)
    assert status in (400, 404), reply
    assert reply["message"]


@pytest.mark.parametrize("depth", [500, 990, 100_000])
def test_a_saved_notebook_nested_too_deeply_is_a_clear_error(
    api: Api, jp_root_dir: Path, depth: int
) -> None:
    deep = "[" * depth + "]" * depth
    text = IRIS.read_text(encoding="utf-8")
    (jp_root_dir / "deep.ipynb").write_text(text[: text.rindex("}")] + f', "deep": {deep}}}')

    status, reply = api("roles", {"path": "deep.ipynb"})

    assert status == 200, reply
    assert reply["cells"] is None and reply["error"]["error"] == "NotebookReadError"
