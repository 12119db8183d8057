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
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nbformat
import psutil
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures, scoped to this module)
from tornado.httpclient import HTTPClientError, HTTPResponse
from traitlets.config import Config

import promoter

# Kernels, Jupyter servers or the TypeScript toolchain: the full suite, not the edit loop.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
IRIS = REPO / "examples" / "notebooks" / "iris_classifier.ipynb"
BAD = REPO / "tests" / "fixtures" / "bad"
IRIS_PARAMETERS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

Fetch = Callable[..., Awaitable[HTTPResponse]]
Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest) -> Config:
    """Enable the extension the way the installed config file does.

    Parametrized indirectly, the parameter is ``Promoter.max_concurrent_runs``.
    """
    config = Config({"ServerApp": {"jpserver_extensions": {"promoter": True}}})
    limit = getattr(request, "param", None)
    if limit is not None:
        config.Promoter.max_concurrent_runs = limit
    return config


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
    # A kernel run on a busy CI machine can outlast pytest-jupyter's 20 s default.
    kwargs.setdefault("request_timeout", 600)
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


# ---------------------------------------------------------------------------------------------
# Jobs: progress, cancel, the bound on concurrent kernel runs


def write_slow_notebook(path: Path, seconds: float, steps: int = 3) -> None:
    """A valid notebook whose handler cells sleep ``seconds`` each."""
    new = nbformat.v4.new_code_cell
    cells = [
        new("import time", metadata={"tags": ["setup"]}),
        new("n = 2", metadata={"tags": ["parameters"]}),
        *[new(f"time.sleep({seconds})") for _ in range(steps)],
        new("{'n': n}", metadata={"tags": ["response"]}),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


async def request(fetch: Fetch, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    """Any method on a ``promoter/...`` path; (status, JSON reply or raw text)."""
    raw = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    kw.setdefault("request_timeout", 600)
    if raw is not None:  # as a browser sends it (FastAPI reads JSON bodies only then)
        kw["headers"] = {"Content-Type": "application/json", **kw.get("headers", {})}
    try:
        response = await fetch(*path.split("/"), method=method, body=raw, **kw)
    except HTTPClientError as exc:
        assert exc.response is not None
        response = exc.response
    text = response.body.decode()
    if response.headers.get("Content-Type", "").startswith("application/json"):
        return response.code, json.loads(text)
    return response.code, text


Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def call(jp_fetch: Fetch, jp_asyncio_loop: asyncio.AbstractEventLoop, root: Path) -> Call:
    """``call(method, "promoter/...", body)`` -> (status, reply), on the server's loop."""

    def run(method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return jp_asyncio_loop.run_until_complete(request(jp_fetch, method, path, body, **kwargs))

    return run


def wait_for(
    loop: asyncio.AbstractEventLoop, check: Callable[[], Any], timeout: float = 180
) -> Any:
    """Let the server's loop run until ``check()`` is truthy; answer its value."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        loop.run_until_complete(asyncio.sleep(0.05))
    return value


def workers_and_kernels() -> tuple[list[psutil.Process], list[psutil.Process]]:
    """The promoter workers under this (server) process, and the kernels under them."""
    workers, kernels = [], []
    for process in psutil.Process().children(recursive=True):
        try:
            if "promoter.frontends.jupyter_worker" in " ".join(process.cmdline()):
                workers.append(process)
                kernels += process.children()
        except psutil.NoSuchProcess:
            continue
    return workers, kernels


def test_job_streams_progress_then_the_inspection(
    call: Call, root: Path, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> None:
    write_slow_notebook(root / "slow.ipynb", 0.5)
    status, job = call("POST", "promoter/jobs", {"action": "inspect", "path": "slow.ipynb"})
    assert status == 202, job
    assert job["state"] in ("queued", "running")
    assert job["notebook"] == "slow.ipynb"
    seen: list[tuple[int, int]] = []

    def finished() -> Any:
        _, polled = call("GET", f"promoter/jobs/{job['id']}")
        seen.append((polled["done"], polled["total"]))
        return polled if polled["state"] in ("done", "failed") else None

    polled = wait_for(jp_asyncio_loop, finished)
    assert polled["state"] == "done", polled
    assert polled["status"] == 200
    assert [p["name"] for p in polled["result"]["parameters"]] == ["n"]
    assert polled["result"]["notebook"] == "slow.ipynb"
    total = seen[-1][1]
    assert total > 0
    assert any(0 < done < total for done, _ in seen), seen  # an intermediate count
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never goes back


def test_failed_job_carries_the_error_with_its_cell(
    call: Call, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> None:
    _, job = call("POST", "promoter/jobs", {"action": "inspect", "path": "cell_raises.ipynb"})
    polled = wait_for(
        jp_asyncio_loop,
        lambda: (p := call("GET", f"promoter/jobs/{job['id']}")[1])["state"] == "failed" and p,
    )
    assert polled["status"] == 422
    reply = polled["result"]
    assert (reply["error"], reply["cell_index"], reply["cell_id"]) == (
        "ExecutionError",
        3,
        "handler",
    )
    assert reply["notebook"] == "cell_raises.ipynb"


def test_convert_job_answers_the_written_folder(
    call: Call, root: Path, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> None:
    body = {"action": "convert", "path": IRIS.name, "out_dir": "svc", "force": False}
    _, job = call("POST", "promoter/jobs", body)
    polled = wait_for(
        jp_asyncio_loop,
        lambda: (
            (p := call("GET", f"promoter/jobs/{job['id']}")[1])["state"] != "running"
            and p["state"] != "queued"
            and p
        ),
    )
    assert polled["state"] == "done", polled
    assert polled["result"]["out_dir_path"] == "svc"
    assert polled["result"]["readme"] == "svc/README.md"
    assert (root / "svc" / "app" / "main.py").is_file()


def test_cancel_kills_the_worker_and_its_kernel(
    call: Call, root: Path, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> None:
    write_slow_notebook(root / "slow.ipynb", 60)
    _, job = call("POST", "promoter/jobs", {"action": "inspect", "path": "slow.ipynb"})
    # Running, with the kernel inside a sleeping cell.
    wait_for(jp_asyncio_loop, lambda: call("GET", f"promoter/jobs/{job['id']}")[1]["done"] >= 2)
    workers, kernels = workers_and_kernels()
    assert len(workers) == 1
    assert len(kernels) == 1
    status, cancelled = call("DELETE", f"promoter/jobs/{job['id']}")
    assert status == 200
    assert cancelled["state"] == "cancelled"
    _, alive = psutil.wait_procs([*workers, *kernels], timeout=20)
    assert not alive
    _, polled = call("GET", f"promoter/jobs/{job['id']}")
    assert polled["state"] == "cancelled"
    assert polled["result"]["error"] == "Cancelled"


def test_cancel_a_queued_job_never_starts_it(
    call: Call, root: Path, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> None:
    write_slow_notebook(root / "slow.ipynb", 60)
    body = {"action": "inspect", "path": "slow.ipynb"}
    ids = [call("POST", "promoter/jobs", body)[1]["id"] for _ in range(3)]
    wait_for(jp_asyncio_loop, lambda: call("GET", "promoter/jobs")[1]["running"] == 2)
    _, third = call("GET", f"promoter/jobs/{ids[2]}")
    assert third["state"] == "queued"
    assert third["position"] == 0
    assert call("DELETE", f"promoter/jobs/{ids[2]}")[1]["state"] == "cancelled"
    for job_id in ids[:2]:
        call("DELETE", f"promoter/jobs/{job_id}")
    wait_for(jp_asyncio_loop, lambda: workers_and_kernels() == ([], []), timeout=20)
    assert call("GET", f"promoter/jobs/{ids[2]}")[1]["state"] == "cancelled"


@pytest.mark.parametrize("jp_server_config", [1, 2], indirect=True, ids=["limit-1", "limit-2"])
def test_runs_beyond_the_limit_wait_in_a_queue(
    call: Call,
    root: Path,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
    jp_server_config: Config,
) -> None:
    limit = jp_server_config.Promoter.max_concurrent_runs
    write_slow_notebook(root / "slow.ipynb", 0.3)
    body = {"action": "inspect", "path": "slow.ipynb"}
    ids = [call("POST", "promoter/jobs", body)[1]["id"] for _ in range(limit + 2)]
    most_running = most_kernels = 0
    positions: set[int] = set()

    def all_done() -> bool:
        nonlocal most_running, most_kernels
        status, listing = call("GET", "promoter/jobs")
        assert status == 200
        assert listing["limit"] == limit
        jobs = listing["jobs"]
        most_running = max(most_running, sum(j["state"] == "running" for j in jobs))
        most_kernels = max(most_kernels, len(workers_and_kernels()[1]))
        positions.update(j["position"] for j in jobs if j["state"] == "queued")
        return all(j["state"] == "done" for j in jobs)

    wait_for(jp_asyncio_loop, all_done)
    assert [j["id"] for j in call("GET", "promoter/jobs")[1]["jobs"]] == ids
    assert most_running == limit
    assert most_kernels <= limit
    assert positions >= {0, 1}  # the queued ones knew their place


def test_a_large_answer_crosses_the_worker_pipe(api: Api, root: Path) -> None:
    """Regression: the worker's result is one JSON line, longer than asyncio's 64 KiB default."""
    new = nbformat.v4.new_code_cell
    cells = [
        new("n = 40000", metadata={"tags": ["parameters"]}),
        new("{'values': list(range(n))}", metadata={"tags": ["response"]}),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), root / "large.ipynb")
    status, reply = api("inspect", {"path": "large.ipynb"})
    assert status == 200, reply
    assert reply["sample_response"]["values"][-1] == 39999


def test_unknown_job_is_404(call: Call) -> None:
    for method in ("GET", "DELETE"):
        status, reply = call(method, "promoter/jobs/0123abcd")
        assert status == 404
        assert reply["error"] == "UsageError"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"action": "run", "path": IRIS.name}, 400),
        ({"action": "inspect", "path": "../outside/secret.ipynb"}, 403),
        ({"action": "inspect", "path": "nope.ipynb"}, 400),
        ({"action": "convert", "path": IRIS.name, "out_dir": "."}, 400),
    ],
    ids=["bad-action", "outside-root", "missing", "root-as-output"],
)
def test_bad_job_requests_are_refused_before_queueing(
    call: Call, outside: Path, body: dict[str, Any], status: int
) -> None:
    got, reply = call("POST", "promoter/jobs", body)
    assert got == status, reply
    assert reply["error"] == "UsageError"
    assert call("GET", "promoter/jobs")[1]["jobs"] == []


# ---------------------------------------------------------------------------------------------
# Roles: the library's static inspection of the notebook as the browser holds it


def test_roles_follow_unsaved_content(call: Call, root: Path) -> None:
    content = json.loads((root / IRIS.name).read_text())
    content["cells"][15]["metadata"]["tags"] = []
    content["cells"][17]["metadata"]["tags"] = ["response"]
    status, reply = call("POST", "promoter/roles", {"path": IRIS.name, "content": content})
    assert status == 200, reply
    assert reply["error"] is None
    roles = {c["index"]: c["role"] for c in reply["cells"]}
    assert (roles[12], roles[14], roles[15], roles[17]) == (
        "parameters",
        "handler",
        "handler",
        "response",
    )
    # The same as the library on the same content (one source of truth).
    edited = root / "edited.ipynb"
    edited.write_text(json.dumps(content))
    expected = promoter.inspect(edited, execute=False).to_dict()["cells"]
    assert reply["cells"] == [{k: c[k] for k in ("index", "id", "role")} for c in expected]
    # Nothing was written: the saved notebook still has its own response cell.
    assert call("POST", "promoter/roles", {"path": IRIS.name})[1]["cells"][15]["role"] == "response"


def test_roles_of_a_notebook_that_breaks_the_contract(call: Call, root: Path) -> None:
    content = json.loads((root / IRIS.name).read_text())
    content["cells"][15]["metadata"]["tags"] = []
    status, reply = call("POST", "promoter/roles", {"path": IRIS.name, "content": content})
    assert status == 200
    assert reply["cells"] is None
    assert reply["error"]["error"] == "ContractError"
    assert "response" in reply["error"]["message"]
    assert reply["error"]["notebook"] == IRIS.name  # not the temporary copy's path


def test_roles_name_the_failing_cell(call: Call) -> None:
    status, reply = call("POST", "promoter/roles", {"path": "non_literal_default.ipynb"})
    assert status == 200
    error = reply["error"]
    assert (error["error"], error["cell_index"], error["cell_id"]) == (
        "ParameterError",
        2,
        "params",
    )


def test_roles_refuse_bad_content_and_paths(call: Call, outside: Path) -> None:
    status, reply = call("POST", "promoter/roles", {"path": IRIS.name, "content": [1]})
    assert status == 400
    assert '"content"' in reply["message"]
    status, _ = call("POST", "promoter/roles", {"path": "../outside/secret.ipynb"})
    assert status == 403


# ---------------------------------------------------------------------------------------------
# Try it: the generated service, served by the Jupyter server behind its auth


def uvicorns() -> list[psutil.Process]:
    """The uvicorn processes under this (server) process."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "uvicorn" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture
def service(call: Call, root: Path) -> Any:
    """The iris example, converted into ``svc/``, then started by ``POST promoter/services``."""
    status, reply = call("POST", "promoter/convert", {"path": IRIS.name, "out_dir": "svc"})
    assert status == 200, reply
    status, started = call("POST", "promoter/services", {"out_dir": "svc"})
    assert status == 200, started
    yield started
    call("DELETE", f"promoter/services/{started['name']}")


def test_try_it_answers_what_the_notebook_answered(call: Call, root: Path, service: Any) -> None:
    assert service["url"] == "promoter/try/svc/"
    assert service["docs"] == "promoter/try/svc/docs"
    expected = promoter.inspect(root / IRIS.name).to_dict()
    example = {p["name"]: p["default"] for p in expected["parameters"]}
    status, answer = call("POST", "promoter/try/svc/iris_classifier", example)
    assert status == 200
    assert answer == expected["sample_response"]
    # Validation errors come back as the service's own 422.
    status, invalid = call("POST", "promoter/try/svc/iris_classifier", {"sepal_lengthh": 1})
    assert status == 422
    assert invalid["detail"]
    # /docs and the schema it loads, through the proxy (the service knows its root path).
    status, docs = call("GET", "promoter/try/svc/docs")
    assert status == 200
    assert "/promoter/try/svc/openapi.json" in docs
    status, openapi = call("GET", "promoter/try/svc/openapi.json")
    assert "/iris_classifier" in openapi["paths"]
    assert call("GET", "promoter/services")[1]["services"] == [service]


def test_try_it_forwards_an_odd_path_as_it_came(call: Call, service: Any) -> None:
    """Issue 13: a NUL (or a ``?``) in the forwarded path reached the service unencoded."""
    for path in ("\x00", "iris_classifier\x00", "iris_classifier?x=1", "a b"):
        status, reply = call("POST", f"promoter/try/svc/{path}", {})
        assert status == 404, (path, reply)
        assert reply["detail"] == "Not Found"
    status, reply = call("GET", "promoter/try/svc/health")
    assert status == 200, reply


def test_a_second_click_stops_the_service(call: Call, service: Any) -> None:
    processes = uvicorns()
    assert len(processes) == 1
    status, reply = call("DELETE", "promoter/services/svc")
    assert status == 200
    assert reply == {"name": "svc", "stopped": True}
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive
    status, reply = call("GET", "promoter/try/svc/health")
    assert status == 404
    assert call("DELETE", "promoter/services/svc")[0] == 404


def service_socket(process: psutil.Process) -> Path:
    """The Unix socket a Try-it uvicorn listens on (its ``--uds`` argument)."""
    command = process.cmdline()
    return Path(command[command.index("--uds") + 1])


def test_try_it_service_is_reachable_only_through_the_server(service: Any) -> None:
    """Issue 23: no TCP port any local user (or a rebinding page) could call; a 0700 folder."""
    [process] = uvicorns()
    assert process.net_connections(kind="inet") == []
    sock = service_socket(process)
    assert sock.is_socket()
    mode = sock.parent.stat().st_mode
    assert mode & 0o777 == 0o700, oct(mode)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "evil.example"])
def test_try_it_service_refuses_any_other_host(service: Any, host: str) -> None:
    """Issue 23: a request that reached the socket some other way names the wrong Host."""
    sock = service_socket(uvicorns()[0])
    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(transport=transport) as client:
        response = client.get(f"http://{host}/health")
    assert response.status_code == 400
    assert response.text == "Invalid host header"


def test_a_dead_service_answers_502_and_leaves_the_list(call: Call, service: Any) -> None:
    """Issue 23: after the service dies the proxy never forwards to whatever took its place."""
    [process] = uvicorns()
    process.kill()
    process.wait(timeout=10)
    status, reply = call("POST", "promoter/try/svc/iris_classifier", {})
    assert status == 502, reply
    assert "stopped" in reply["message"] and "Try it" in reply["message"]
    assert call("GET", "promoter/services")[1] == {"services": []}
    assert call("GET", "promoter/try/svc/health")[0] == 404


def test_docs_page_gets_a_policy_for_its_own_assets_and_the_xsrf_token(
    jp_fetch: Fetch, jp_asyncio_loop: asyncio.AbstractEventLoop, service: Any
) -> None:
    """Issue 26: Jupyter's ``default-src 'none'`` blanked Swagger UI; its POSTs lacked _xsrf."""
    response = jp_asyncio_loop.run_until_complete(jp_fetch("promoter", "try", "svc", "docs"))
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    own = directives["script-src"].split()[0]
    assert own.endswith("/promoter/try/svc/"), policy
    assert directives["default-src"] == "'none'"
    assert all(s == own or s.startswith("'sha256-") for s in directives["script-src"].split())
    assert directives["connect-src"] == own
    html = response.body.decode()
    assert '"X-XSRFToken"' in html
    assert "/promoter/try/svc/docs-assets/swagger-ui-bundle.js" in html


def test_server_shutdown_stops_services_and_jobs(
    call: Call,
    root: Path,
    service: Any,
    jp_serverapp: Any,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
) -> None:
    write_slow_notebook(root / "slow.ipynb", 60)
    call("POST", "promoter/jobs", {"action": "inspect", "path": "slow.ipynb"})
    wait_for(jp_asyncio_loop, lambda: workers_and_kernels()[0])
    processes = [*uvicorns(), *workers_and_kernels()[0]]
    assert len(processes) == 2
    jp_asyncio_loop.run_until_complete(jp_serverapp.cleanup_extensions())
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive


def test_try_it_needs_a_generated_service(call: Call, root: Path, outside: Path) -> None:
    (root / "empty").mkdir()
    status, reply = call("POST", "promoter/services", {"out_dir": "empty"})
    assert status == 400
    assert "Generate" in reply["hint"]
    assert call("POST", "promoter/services", {"out_dir": "../outside"})[0] == 403


# ---------------------------------------------------------------------------------------------
# Authentication on every new endpoint

NEW_ENDPOINTS = [
    ("POST", "promoter/jobs", {"action": "inspect", "path": IRIS.name}),
    ("GET", "promoter/jobs", None),
    ("GET", "promoter/jobs/0123abcd", None),
    ("DELETE", "promoter/jobs/0123abcd", None),
    ("POST", "promoter/roles", {"path": IRIS.name}),
    ("POST", "promoter/services", {"out_dir": "svc"}),
    ("GET", "promoter/services", None),
    ("DELETE", "promoter/services/svc", None),
    ("GET", "promoter/try/svc/docs", None),
    ("POST", "promoter/try/svc/iris_classifier", {}),
]


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": ""}, {"Authorization": "token not-the-token"}],
    ids=["no-token", "wrong-token"],
)
@pytest.mark.parametrize(
    ("method", "path", "body"), NEW_ENDPOINTS, ids=[f"{m}-{p}" for m, p, _ in NEW_ENDPOINTS]
)
def test_new_endpoints_refuse_unauthenticated_requests(
    call: Call, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    status, _ = call(method, path, body, headers=headers)
    assert status == 403
    assert call("GET", "promoter/jobs")[1]["jobs"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [e for e in NEW_ENDPOINTS if e[0] != "GET"],
    ids=[f"{m}-{p}" for m, p, _ in NEW_ENDPOINTS if m != "GET"],
)
def test_new_endpoints_need_the_xsrf_token_with_a_cookie(
    call: Call,
    jp_fetch: Fetch,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
    jp_serverapp: Any,
    method: str,
    path: str,
    body: Any,
) -> None:
    token = jp_serverapp.identity_provider.token
    cookies = jp_asyncio_loop.run_until_complete(browser_cookies(jp_fetch, token))
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    status, _ = call(method, path, body, headers={"Authorization": "", "Cookie": cookie})
    assert status == 403
    assert call("GET", "promoter/jobs")[1]["jobs"] == []


def test_a_runaway_notebook_answers_a_clear_error_and_leaves_nothing(api: Api, root: Path) -> None:
    # Through the endpoint the kernel runs under the Jupyter server: its output is capped the
    # same way, and what setup started ends with the run.
    import random

    from tests.helpers import write_notebook

    marker = f"600.{random.randrange(10**8):08d}"
    write_notebook(
        root / "runaway.ipynb",
        ("code", f"import subprocess\nhelper = subprocess.Popen(['sleep', '{marker}'])", []),
        ("code", "n = 3", ["parameters"]),
        ("code", 'while True:\n    print("x" * 1000)', []),
        ("code", "{'n': n}", ["response"]),
        metadata={"max_output_mb": 2},
    )
    status, reply = api("inspect", {"path": "runaway.ipynb"})
    assert status == 422, reply
    assert (reply["error"], reply["cell_index"]) == ("ExecutionError", 2)
    assert "printed more than 2 MB of output" in reply["message"]
    assert "print less" in reply["hint"]
    left = [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if marker in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert left == []
