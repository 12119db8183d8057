"""The jupyter_server extension's REST endpoints (promoter/_jupyter.py), on a real test server.

pytest-jupyter starts a Jupyter server in-process with a token; ``jp_fetch`` sends that token
unless a test overrides the ``Authorization`` header. The root directory holds a copy of the
iris example and two broken notebooks; a notebook outside the root checks the confinement.

pytest-jupyter's fixtures are imported into this module rather than registered as a plugin:
its autouse fixtures (a fresh event loop and a ServerApp cleanup around every test) then apply
to these tests only, not to the whole suite. Without its hooks the tests are plain functions
that run the client coroutines on ``jp_asyncio_loop``.
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

import promoter

REPO = Path(__file__).resolve().parent.parent
IRIS = REPO / "examples" / "notebooks" / "iris_classifier.ipynb"
BAD = REPO / "tests" / "fixtures" / "bad"
IRIS_PARAMETERS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

Fetch = Callable[..., Awaitable[HTTPResponse]]
Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def jp_server_config() -> Config:
    """Enable the extension the way the installed config file does."""
    return Config({"ServerApp": {"jpserver_extensions": {"promoter": True}}})


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    """The server root: the iris example and two broken notebooks."""
    shutil.copy(IRIS, jp_root_dir / IRIS.name)
    for name in ("non_literal_default.ipynb", "cell_raises.ipynb"):
        shutil.copy(BAD / name, jp_root_dir / name)
    return jp_root_dir


@pytest.fixture
def outside(tmp_path: Path, root: Path) -> Path:
    """A valid notebook outside the root: refusing it proves confinement, not a missing file."""
    folder = tmp_path / "outside"
    folder.mkdir()
    shutil.copy(IRIS, folder / "secret.ipynb")
    return folder


async def post(fetch: Fetch, endpoint: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
    """POST a JSON body; answer the status and the decoded JSON reply, errors included."""
    raw = body if isinstance(body, str) else json.dumps(body)
    try:
        response = await fetch("promoter", endpoint, method="POST", body=raw, **kwargs)
    except HTTPClientError as exc:
        assert exc.response is not None
        response = exc.response
    assert response.headers["Content-Type"].startswith("application/json"), response.body
    return response.code, json.loads(response.body)


@pytest.fixture
def api(jp_fetch: Fetch, jp_asyncio_loop: asyncio.AbstractEventLoop, root: Path) -> Api:
    """``api(endpoint, body, **fetch_options)`` -> (status, JSON reply), on the server's loop."""

    def call(endpoint: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
        return jp_asyncio_loop.run_until_complete(post(jp_fetch, endpoint, body, **kwargs))

    return call


def test_inspect_answers_the_inspection(api: Api, root: Path) -> None:
    status, reply = api("inspect", {"path": IRIS.name})
    assert status == 200, reply
    assert [p["name"] for p in reply["parameters"]] == IRIS_PARAMETERS
    assert reply["route"] == "/iris_classifier"
    assert reply["notebook"] == IRIS.name  # relative to the root: the browser knows no other
    roles = {cell["index"]: cell["role"] for cell in reply["cells"]}
    assert roles[12] == "parameters"
    assert roles[15] == "response"
    assert reply["response_schema"]["properties"].keys() >= {"species", "confidence"}


def test_inspect_matches_the_library(api: Api, root: Path) -> None:
    status, reply = api("inspect", {"path": IRIS.name})
    expected = promoter.inspect(root / IRIS.name).to_dict()
    assert status == 200
    assert reply["parameters"] == expected["parameters"]
    assert reply["response_schema"] == expected["response_schema"]


def test_convert_writes_the_service_next_to_the_notebook(api: Api, root: Path) -> None:
    sub = root / "models"
    sub.mkdir()
    shutil.copy(IRIS, sub / IRIS.name)
    status, reply = api("convert", {"path": f"models/{IRIS.name}"})
    assert status == 200, reply
    service = sub / "iris_classifier_service"
    assert reply["out_dir_path"] == "models/iris_classifier_service"
    assert reply["readme"] == "models/iris_classifier_service/README.md"
    assert reply["routes"] == ["/iris_classifier"]
    assert (service / "app" / "main.py").is_file()
    assert (service / "README.md").is_file()


def test_convert_into_a_chosen_folder(api: Api, root: Path) -> None:
    body = {"path": IRIS.name, "out_dir": "services/iris", "force": False}
    status, reply = api("convert", body)
    assert status == 200, reply
    assert reply["out_dir_path"] == "services/iris"
    assert (root / "services" / "iris" / "app" / "main.py").is_file()


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": ""}, {"Authorization": "token not-the-token"}],
    ids=["no-token", "wrong-token"],
)
@pytest.mark.parametrize("endpoint", ["inspect", "convert"])
def test_unauthenticated_requests_are_refused(
    api: Api, root: Path, endpoint: str, headers: dict[str, str]
) -> None:
    status, reply = api(endpoint, {"path": IRIS.name}, headers=headers)
    assert status == 403
    assert "message" in reply
    assert not (root / "iris_classifier_service").exists()


async def browser_cookies(fetch: Fetch, token: str) -> dict[str, str]:
    """The cookies a browser holds after logging in: the login cookie and the ``_xsrf`` one."""
    cookies: dict[str, str] = {}
    # The login page sets ``_xsrf`` when it renders; ``?token=`` then sets the login cookie.
    for params, headers in (({}, {"Authorization": ""}), ({"token": token}, {})):
        page = await fetch(
            "login", params=params, headers=headers, follow_redirects=False, raise_error=False
        )
        for header in page.headers.get_list("Set-Cookie"):
            name, value = header.split(";", 1)[0].split("=", 1)
            cookies[name] = value
    return cookies


def test_browser_session_needs_the_xsrf_token(
    api: Api, jp_fetch: Fetch, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_serverapp: Any
) -> None:
    """A cookie session must also send the XSRF token, as JupyterLab's ServerConnection does."""
    token = jp_serverapp.identity_provider.token
    cookies = jp_asyncio_loop.run_until_complete(browser_cookies(jp_fetch, token))
    assert "_xsrf" in cookies
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = {"path": "missing.ipynb"}  # fails fast once past authentication

    status, _ = api("inspect", body, headers={"Authorization": "", "Cookie": cookie})
    assert status == 403

    headers = {"Authorization": "", "Cookie": cookie, "X-XSRFToken": cookies["_xsrf"]}
    status, reply = api("inspect", body, headers=headers)
    assert status == 400  # authenticated: the library's own "no such notebook" error
    assert reply["error"] == "UsageError"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"path": "../outside/secret.ipynb"}, 403),
        ({"path": "sub/../../outside/secret.ipynb"}, 403),
        ({"path": "ABSOLUTE"}, 400),
        ({"path": "link.ipynb"}, 403),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink"],
)
@pytest.mark.parametrize("endpoint", ["inspect", "convert"])
def test_notebook_outside_the_root_is_refused(
    api: Api, root: Path, outside: Path, endpoint: str, body: dict[str, str], status: int
) -> None:
    (root / "link.ipynb").symlink_to(outside / "secret.ipynb")
    if body["path"] == "ABSOLUTE":
        body = {"path": str(root / IRIS.name)}  # absolute even when it points inside
    got, reply = api(endpoint, body)
    assert got == status, reply
    assert reply["error"] == "UsageError"
    assert "root" in reply["message"]
    assert list(outside.iterdir()) == [outside / "secret.ipynb"]


@pytest.mark.parametrize(
    ("out_dir", "status"),
    [
        ("../outside/service", 403),
        ("ABSOLUTE", 400),
        ("linked/service", 403),
        (".", 400),
        ("", 400),
    ],
    ids=["dotdot", "absolute", "symlinked-folder", "root-itself", "empty"],
)
def test_output_folder_outside_the_root_is_refused(
    api: Api, root: Path, outside: Path, out_dir: str, status: int
) -> None:
    (root / "linked").symlink_to(outside, target_is_directory=True)
    if out_dir == "ABSOLUTE":
        out_dir = str(outside / "service")
    got, reply = api("convert", {"path": IRIS.name, "out_dir": out_dir})
    assert got == status, reply
    assert reply["error"] == "UsageError"
    assert list(outside.iterdir()) == [outside / "secret.ipynb"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "JSON"),
        ('["a list"]', "JSON object"),
        ({}, '"path"'),
        ({"path": 3}, '"path"'),
        ({"path": IRIS.name, "force": "yes"}, '"force"'),
    ],
    ids=["not-json", "not-an-object", "no-path", "path-not-string", "force-not-bool"],
)
def test_malformed_requests_answer_400(api: Api, root: Path, body: Any, field: str) -> None:
    status, reply = api("convert", body)
    assert status == 400
    assert reply["error"] == "UsageError"
    assert field in reply["message"]


@pytest.mark.parametrize(
    ("name", "error", "cell_index", "cell_id", "line"),
    [
        ("non_literal_default.ipynb", "ParameterError", 2, "params", 2),
        ("cell_raises.ipynb", "ExecutionError", 3, "handler", 2),
    ],
)
@pytest.mark.parametrize("endpoint", ["inspect", "convert"])
def test_broken_notebook_answers_the_clear_error(
    api: Api,
    root: Path,
    endpoint: str,
    name: str,
    error: str,
    cell_index: int,
    cell_id: str,
    line: int,
) -> None:
    status, reply = api(endpoint, {"path": name})
    assert status == 422
    assert reply["error"] == error
    assert (reply["notebook"], reply["cell_index"], reply["cell_id"], reply["line"]) == (
        name,
        cell_index,
        cell_id,
        line,
    )
    # The same message the library (and so the CLI) gives.
    with pytest.raises(promoter.PromoterError) as raised:
        promoter.inspect(root / name)
    assert reply["message"] == raised.value.message
    assert reply["hint"] == raised.value.hint
    assert not (root / f"{Path(name).stem}_service").exists()


def test_missing_notebook_is_a_usage_error(api: Api, root: Path) -> None:
    status, reply = api("inspect", {"path": "nope.ipynb"})
    assert status == 400
    assert reply["error"] == "UsageError"
    assert "nope.ipynb" in reply["message"]


def test_edited_file_is_protected_until_forced(api: Api, root: Path) -> None:
    status, _ = api("convert", {"path": IRIS.name})
    assert status == 200
    main = root / "iris_classifier_service" / "app" / "main.py"
    main.write_text(main.read_text() + "\n# my edit\n")

    status, reply = api("convert", {"path": IRIS.name})
    assert status == 422
    assert reply["error"] == "EditedFileError"
    assert reply["paths"] == ["app/main.py"]
    assert main.read_text().endswith("# my edit\n")

    status, reply = api("convert", {"path": IRIS.name, "force": True})
    assert status == 200, reply
    assert not main.read_text().endswith("# my edit\n")
