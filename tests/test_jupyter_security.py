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
def jp_server_config() -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"promoter": True}}})


@pytest.fixture
def api(jp_fetch: Fetch, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Api:
    """``api(endpoint, body)`` -> (status, JSON reply), on the server's loop."""

    async def post(endpoint: str, body: Any) -> tuple[int, Any]:
        try:
            response = await jp_fetch("promoter", endpoint, method="POST", body=json.dumps(body))
        except HTTPClientError as exc:
            assert exc.response is not None
            response = exc.response
        return response.code, json.loads(response.body)

    def call(endpoint: str, body: Any) -> tuple[int, Any]:
        return jp_asyncio_loop.run_until_complete(post(endpoint, body))

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
