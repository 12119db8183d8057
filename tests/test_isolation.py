"""Requests never see each other (DESIGN.md section 1; issue 13).

A notebook whose handler changes shared state is either made safe at convert time (what it
changes is copied per request; a route that changes process-global state is serialised) or
refused with the cell and line. The end-to-end test sends 1,000 requests at 16 concurrent with
random parameters to a real service whose routes hold each kind of shared state, and checks
every answer against the lone answer of a fresh process (which each handler makes computable:
a fresh process sees only its own request).
"""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import promoter
from tests.helpers import run_cli, write_notebook

#: name -> (setup cell, parameters cell, handler cell, response cell)
SAFE = {
    "append": ("history = []", "user = 'a'", "history.append(user)", "{'seen': list(history)}"),
    "item": ("cache = {}", "user = 'a'\nsecret = 0", "cache[user] = secret", "dict(cache)"),
    "attribute": (
        "class Model:\n    calls = 0\n\n\nmodel = Model()",
        "x = 0",
        "model.calls += 1",
        "{'calls': model.calls, 'x': x}",
    ),
    "method": (
        "class Counter:\n    def __init__(self):\n        self.items = []\n\n"
        "    def add(self, item):\n        self.items.append(item)\n        return len(self.items)"
        "\n\n\ncounter = Counter()",
        "x = 0",
        "n = counter.add(x)",
        "{'n': n, 'x': x}",
    ),
    "alias": (
        "groups = {'a': [], 'b': []}",
        "user = 'a'\nx = 0",
        "members = groups[user]\nmembers.append(x)",
        "{'members': list(members)}",
    ),
    "seed": (
        "import random",
        "seed = 0",
        "random.seed(seed)\ndraws = [random.random() for _ in range(200)]",
        "{'draws': draws[-3:]}",
    ),
    "numpy_seed": (
        "import numpy as np",
        "seed = 0",
        "np.random.seed(seed)\ndraws = np.random.rand(200)",
        "{'draws': draws[-3:].tolist()}",
    ),
    "setup_seed": (
        "import random\n\nrandom.seed(7)",
        "x = 0",
        "draws = [random.random() for _ in range(5)]",
        "{'draws': draws, 'x': x}",
    ),
    "numpy_setup_seed": (
        "import numpy as np\n\nnp.random.seed(7)",
        "x = 0",
        "draws = np.random.rand(5)",
        "{'draws': draws.tolist(), 'x': x}",
    ),
    "figure": (
        "import matplotlib\n\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt",
        "x = 0",
        "fig = plt.figure()\n(line,) = plt.plot([x, x])\n"
        "lines = len(plt.gca().lines)\nplt.close(fig)",
        "{'lines': lines, 'figures': len(plt.get_fignums()), 'x': x}",
    ),
}

#: name -> (setup cell, parameters cell, handler cell, what the refusal names)
REFUSED = {
    "global": ("counter = 0", "x = 1", "global counter\ncounter += x", "global counter"),
    "setup_function": (
        "seen = []\n\n\ndef remember(item):\n    seen.append(item)\n    return len(seen)",
        "x = 1",
        "n = remember(x)",
        "remember",
    ),
    "chdir": ("import os", "folder = '.'", "os.chdir(folder)", "working directory"),
    "environ": ("import os", "x = 'a'", "os.environ['X'] = x", "environment"),
}


def _notebook(folder: Path, name: str, setup: str, params: str, handler: str, response: str):
    return write_notebook(
        folder / f"{name}.ipynb",
        ("code", setup, []),
        ("code", params, ["parameters"]),
        ("code", handler, []),
        ("code", response, ["response"]),
    )


def _lone(name: str, body: dict[str, Any]) -> Any:
    """What a fresh process answers to this one request."""
    lone: dict[str, Any] = {
        "append": lambda: {"seen": [body["user"]]},
        "item": lambda: {body["user"]: body["secret"]},
        "attribute": lambda: {"calls": 1, "x": body["x"]},
        "method": lambda: {"n": 1, "x": body["x"]},
        "alias": lambda: {"members": [body["x"]]},
        "seed": lambda: {"draws": _draws(body["seed"])},
        "numpy_seed": lambda: {
            "draws": np.random.RandomState(body["seed"]).rand(200)[-3:].tolist()
        },
        "figure": lambda: {"lines": 1, "figures": 0, "x": body["x"]},
        "setup_seed": lambda: {"draws": _draws(7, 5, last=5), "x": body["x"]},
        "numpy_setup_seed": lambda: {
            "draws": np.random.RandomState(7).rand(5).tolist(),
            "x": body["x"],
        },
    }
    return lone[name]()


def _draws(seed: int, count: int = 200, last: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(count)][-last:]


def _body(name: str, rng: random.Random) -> dict[str, Any]:
    user = rng.choice(["a", "b"])
    return {
        "append": {"user": rng.choice(["ann", "bob", "eve"])},
        "item": {"user": rng.choice(["ann", "bob"]), "secret": rng.randrange(1000)},
        "attribute": {"x": rng.randrange(1000)},
        "method": {"x": rng.randrange(1000)},
        "alias": {"user": user, "x": rng.randrange(1000)},
        "seed": {"seed": rng.randrange(50)},
        "numpy_seed": {"seed": rng.randrange(50)},
        "figure": {"x": rng.randrange(1000)},
        "setup_seed": {"x": rng.randrange(1000)},
        "numpy_setup_seed": {"x": rng.randrange(1000)},
    }[name]


def test_inspect_reports_what_it_made_safe(tmp_path: Path) -> None:
    for name, cells in SAFE.items():
        inspection = promoter.inspect(_notebook(tmp_path, name, *cells), execute=False)
        messages = " ".join(w.message for w in inspection.warnings)
        if name in ("seed", "numpy_seed", "figure", "setup_seed", "numpy_setup_seed"):
            assert inspection.extraction.serialised and "one request at a time" in messages
        else:
            assert inspection.extraction.copied and "its own copy" in messages, name
        assert any(w.location.cell_index == 2 for w in inspection.warnings), name
        if "setup_seed" in name:
            assert inspection.extraction.restored, name


def test_a_module_can_be_declared_shared(tmp_path: Path) -> None:
    """`"shared": ["random"]`: the route is not serialised (the notebook accepts the mix)."""
    setup, params, handler, response = SAFE["seed"]
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", setup, []),
        ("code", params, ["parameters"]),
        ("code", handler, []),
        ("code", response, ["response"]),
        metadata={"shared": ["random"]},
    )
    inspection = promoter.inspect(notebook, execute=False)
    assert inspection.extraction.serialised == () and inspection.extraction.restored == ()


def test_reading_shared_state_changes_nothing(tmp_path: Path) -> None:
    """No copy and no lock where the handler only reads (no false alarms on common code)."""
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        (
            "code",
            "import os\nimport sys\nimport warnings\nimport numpy as np\n\n"
            "history = ['a']\ncache = {'a': [1]}\nweights = np.ones(3)",
            [],
        ),
        ("code", "user = 'a'\nseed = 1", ["parameters"]),
        (
            "code",
            "home = os.environ.get('HOME')\nfirst = sys.path[0]\nwarnings.warn('note')\n"
            "rng = np.random.default_rng(seed)\nnoise = rng.random(3)\n"
            "items = sorted(history) + list(cache.get(user, []))\nitems.append(user)\n"
            "scaled = weights * 2\nscaled[0] = 0",
            [],
        ),
        ("code", "{'items': items, 'total': float(scaled.sum() + noise.sum())}", ["response"]),
    )
    inspection = promoter.inspect(notebook, execute=False)
    assert inspection.extraction.copied == () and inspection.extraction.serialised == ()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_convert_refuses_what_cannot_be_kept_apart(tmp_path: Path, name: str) -> None:
    setup, params, handler, named = REFUSED[name]
    notebook = _notebook(tmp_path, name, setup, params, handler, "{'ok': 1}")
    result = run_cli("convert", notebook, "-o", tmp_path / "svc")
    assert result.returncode != 0, result.output
    assert "cell 3" in result.output and "line" in result.output, result.output
    assert named in result.output
    assert not (tmp_path / "svc").exists()


@pytest.mark.slow
def test_a_change_static_analysis_misses_is_caught_by_verification(tmp_path: Path) -> None:
    """A bound method kept in setup hides the change; the second default answer shows it."""
    notebook = _notebook(
        tmp_path,
        "hidden",
        "seen = []\nremember = seen.append",
        "user = 'a'",
        "remember(user)",
        "{'seen': len(seen)}",
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900)
    assert result.returncode != 0, result.output
    assert "second request" in result.output and "cell 4" in result.output
    assert not (tmp_path / "svc").exists()


@pytest.mark.slow
def test_shared_state_can_be_declared(tmp_path: Path, serve_folder) -> None:
    """`"shared": ["counter"]` keeps a counter across requests, on purpose."""
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "counter = 0", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "global counter\ncounter += x", []),
        ("code", "{'counter': counter}", ["response"]),
        metadata={"shared": ["counter"]},
    )
    inspection = promoter.inspect(notebook, execute=False)
    assert inspection.extraction.copied == () and inspection.extraction.serialised == ()
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900)
    assert result.returncode == 0, result.output
    url = serve_folder(tmp_path / "svc").url
    counts = [httpx.post(url + "/nb", json={"x": 1}).json()["counter"] for _ in range(3)]
    assert counts == [1, 2, 3]


@pytest.mark.slow
def test_a_thousand_concurrent_requests_never_see_each_other(tmp_path: Path, serve_folder) -> None:
    notebooks = [_notebook(tmp_path / "nbs", name, *cells) for name, cells in SAFE.items()]
    out = tmp_path / "svc"
    result = run_cli("convert", *notebooks, "-o", out, timeout=1200)
    assert result.returncode == 0, result.output
    server = serve_folder(out)
    rng = random.Random(13)
    plan = [(name, _body(name, rng)) for name in rng.choices(sorted(SAFE), k=1000)]
    answers = asyncio.run(_send_all(server.url, plan, concurrency=16))
    wrong = [
        (name, body, status, answer)
        for (name, body), (status, answer) in zip(plan, answers, strict=True)
        if status != 200 or answer != _lone(name, body)
    ]
    assert wrong == [], f"{len(wrong)} of 1000 answers differ, e.g. {wrong[:3]}"


async def _send_all(
    url: str, plan: list[tuple[str, dict[str, Any]]], concurrency: int
) -> list[tuple[int, Any]]:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def send(name: str, body: dict[str, Any]) -> tuple[int, Any]:
            async with gate:
                reply = await client.post(f"/{name}", json=body)
                return reply.status_code, reply.json()

        return await asyncio.gather(*(send(name, body) for name, body in plan))


def test_a_file_written_on_every_request_is_reported_at_its_line(tmp_path: Path) -> None:
    """A scoring notebook that saves its result beside itself, as people do before emailing it."""
    notebook = write_notebook(
        tmp_path / "score.ipynb",
        ("code", "import numpy as np\nimport pandas as pd", []),
        ("code", "n = 3", ["parameters"]),
        (
            "code",
            "df = pd.DataFrame({'x': range(n)})\ncsv_text = df.to_csv()\n"
            "df.to_csv('scored.csv', index=False)\nnp.save('scores.npy', df.x.to_numpy())\n"
            "with open('log.txt', 'a') as log:\n    log.write(csv_text)\n"
            "with open('scored.csv') as f:\n    first = f.readline()",
            [],
        ),
        ("code", "{'total': int(df.x.sum()), 'header': first.strip()}", ["response"]),
    )
    result = run_cli("inspect", notebook, "--static")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    warned = [ln for ln in output.splitlines() if "writes a file on every request" in ln]
    # to_csv(path), np.save and open(..., 'a'); not to_csv() (it returns text) nor the read.
    places = [re.search(r"cell (\d+) \(id [^)]*\), line (\d+)", ln) for ln in warned]
    assert [m.groups() if m else ln for m, ln in zip(places, warned, strict=True)] == [
        ("3", "3"),
        ("3", "4"),
        ("3", "5"),
    ], output


def test_why_a_route_is_serialised_counts_cells_from_one(tmp_path: Path) -> None:
    notebook = _notebook(tmp_path, "seed", *SAFE["seed"])
    inspection = promoter.inspect(notebook, execute=False)
    (reason,) = inspection.extraction.serialised
    assert "(cell 3, line" in reason, reason


def test_pandas_sample_draws_from_the_seeded_numpy_generator(tmp_path: Path) -> None:
    """`series.sample(2)` with `np.random.seed(0)` in setup: serialised and restored (issue 22)."""
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import numpy as np\nimport pandas as pd\nnp.random.seed(0)", []),
        ("code", "n = 2", ["parameters"]),
        ("code", "s = pd.Series(range(50))\npicked = s.sample(n)", []),
        ("code", "picked.tolist()", ["response"]),
    )
    inspection = promoter.inspect(notebook, execute=False)
    assert inspection.extraction.restored == ("numpy.random",)
    assert "s.sample(...) (cell 3, line 2)" in inspection.extraction.serialised[0]


def test_drawing_configuration_is_not_shared_state(tmp_path: Path) -> None:
    """`plt.style.use` and `sns.set_theme` in a handler do not serialise the route."""
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        (
            "code",
            "import io\nimport matplotlib\nimport seaborn as sns\nfrom matplotlib.figure "
            "import Figure\nimport matplotlib.pyplot as plt",
            [],
        ),
        ("code", "title = 'sales'", ["parameters"]),
        (
            "code",
            "plt.style.use('ggplot')\nsns.set_theme(style='whitegrid')\n"
            "matplotlib.rcParams['font.size'] = 9\nfig = Figure()\nfig.subplots().plot([1, 2])\n"
            "buffer = io.BytesIO()\nfig.savefig(buffer, format='svg')",
            [],
        ),
        ("code", "{'title': title, 'svg_bytes': len(buffer.getvalue())}", ["response"]),
    )
    inspection = promoter.inspect(notebook, execute=False)
    assert inspection.extraction.serialised == ()
    assert not inspection.extraction.closes_figures


def test_a_route_drawing_with_pyplot_closes_its_figures(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import io\nimport matplotlib.pyplot as plt", []),
        ("code", "n = 3", ["parameters"]),
        (
            "code",
            "fig, ax = plt.subplots()\nax.plot(range(n))\nbuffer = io.BytesIO()\n"
            "fig.savefig(buffer, format='svg')",
            [],
        ),
        ("code", "{'svg_bytes': len(buffer.getvalue()) > 0}", ["response"]),
    )
    inspection = promoter.inspect(notebook, execute=False)
    assert inspection.extraction.closes_figures
    assert inspection.extraction.serialised
