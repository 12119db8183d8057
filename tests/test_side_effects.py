"""Side effects are not promoted: drawing and printing statements leave the service.

DESIGN.md section 1: a backward slice from the names the response expression reads decides;
what defines or mutates those names is kept, whatever only draws or prints is dropped (and
listed), and imports only the dropped statements used go with them.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest

from promoter.analysis.extract import Extraction, extract
from promoter.analysis.parameters import infer_request
from promoter.reading.notebook import read_notebook
from promoter.reading.source import response_expression
from tests.helpers import run_cli, write_notebook

SLICED = "only draws or prints; the response does not depend on it"
PLOTTING = Path(__file__).resolve().parent / "fixtures" / "real" / "plot_mid_cell.ipynb"


def _extract(tmp_path: Path, *cells: tuple[str, str, list[str]]) -> Extraction:
    nb = read_notebook(write_notebook(tmp_path / "nb.ipynb", *cells))
    return extract(nb, infer_request(nb), response_expression(nb))


def _code(ex: Extraction) -> str:
    return "\n".join(b.code for b in (*ex.setup, *ex.handler))


def _sliced(ex: Extraction) -> list[str]:
    return [d.what for d in ex.dropped if d.why == SLICED]


def test_drawing_and_printing_mid_cell_are_dropped_with_their_imports(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "import matplotlib.pyplot as plt\nimport seaborn as sns\ndata = [1, 2, 3]", []),
        ("code", "print('loaded', len(data))", []),
        ("code", "x = 2.0", ["parameters"]),
        (
            "code",
            "fig, ax = plt.subplots()\nys = [v * x for v in data]\nplt.scatter(data, ys)\n"
            "ax.set_title('t')\nsns.histplot(ys)\ndisplay(ys)\nprint(ys)",
            [],
        ),
        ("code", "{'total': sum(ys)}", ["response"]),
    )
    code = _code(ex)
    assert not re.search(r"\b(plt|sns|ax|fig|print|display)\b", code), code
    assert "ys = [v * x for v in data]" in code
    assert _sliced(ex) == [
        "print('loaded', len(data))",
        "fig, ax = plt.subplots()",
        "plt.scatter(data, ys)",
        "ax.set_title('t')",
        "sns.histplot(ys)",
        "print(ys)",
    ]
    assert {d.location.cell_index for d in ex.dropped if d.why == SLICED} == {1, 3}
    assert ex.imports == ()
    assert ex.modules == ()  # matplotlib is no dependency of a service that never draws


def test_statements_that_mutate_what_the_response_reads_are_kept(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "import random\nrandom.seed(1)\nitems = []\nd = {}", []),
        ("code", "n = 3", ["parameters"]),
        (
            "code",
            "items.append(n)\nd['k'] = n\ncounter = 0\ncounter += n\nprint(items.pop())\n"
            "items.append(n)\nlog = []\nprint('x', file=log)",
            [],
        ),
        ("code", "{'items': items, 'd': d, 'c': counter}", ["response"]),
    )
    code = _code(ex)
    for kept in ("random.seed(1)", "items.append(n)", "d['k'] = n", "counter += n"):
        assert kept in code
    # `print(items.pop())` changes `items` (pop is a method call on it): kept.
    assert "print(items.pop())" in code
    # Nothing the response reads: `log` and the print into it are unused, but `log = []` is
    # not a drawing, so only the print goes.
    assert _sliced(ex) == ["print('x', file=log)"]


def test_unknown_calls_with_unused_results_are_kept(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "import random\nimport os", []),
        ("code", "n = 3", ["parameters"]),
        ("code", "random.seed(n)\nos.environ.get('X')\nvalue = random.random()", []),
        ("code", "{'value': value}", ["response"]),
    )
    assert "random.seed(n)" in _code(ex)
    assert _sliced(ex) == []


def test_a_service_that_draws_keeps_its_drawing(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "import io\nimport matplotlib.pyplot as plt", []),
        ("code", "n = 3", ["parameters"]),
        (
            "code",
            "fig, ax = plt.subplots()\nax.plot([1, n])\nplt.title('t')\nprint('drawn')\n"
            "buf = io.BytesIO()\nfig.savefig(buf, format='png')",
            [],
        ),
        ("code", "{'size': len(buf.getvalue())}", ["response"]),
    )
    code = _code(ex)
    for kept in ("plt.subplots()", "ax.plot([1, n])", "plt.title('t')", "fig.savefig(buf"):
        assert kept in code
    assert _sliced(ex) == ["print('drawn')"]
    assert "import matplotlib.pyplot as plt" in ex.imports


def test_pandas_display_methods_and_plots_are_dropped(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "rows = [1, 2, 3]", ["parameters"]),
        ("code", "import pandas as pd\ndf = pd.DataFrame({'a': rows})", []),
        (
            "code",
            "df.head()\ndf.plot(kind='bar')\ndf['a'].hist(bins=3)\nax = df.plot.scatter(x='a', "
            "y='a')\nax.set_xlabel('a')\ndf.dropna(inplace=True)",
            [],
        ),
        ("code", "{'n': len(df)}", ["response"]),
    )
    code = _code(ex)
    assert "df.dropna(inplace=True)" in code
    assert "plot" not in code and "hist" not in code and "ax." not in code
    assert "pd.DataFrame" in code


def test_one_line_with_two_statements_is_kept_whole(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "n = 3", ["parameters"]),
        ("code", "m = n * 2; print(m)", []),
        ("code", "{'m': m}", ["response"]),
    )
    assert "m = n * 2; print(m)" in _code(ex)


async def _hammer(url: str, total: int, connections: int) -> tuple[int, set[str]]:
    errors = 0
    bodies: set[str] = set()
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(connections)

        async def one(i: int) -> None:
            nonlocal errors
            async with gate:
                response = await client.post("/plot_mid_cell", json={"n": i % 7})
            if response.status_code != 200:
                errors += 1
            bodies.add(response.text)

        await asyncio.gather(*(one(i) for i in range(total)))
    return errors, bodies


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


@pytest.mark.slow
def test_plotting_handler_serves_without_drawing(tmp_path: Path, serve_folder) -> None:
    out = tmp_path / "svc"
    result = run_cli("convert", PLOTTING, "-o", out)
    assert result.returncode == 0, result.output
    pipeline = next(out.glob("app/*pipeline.py")).read_text()
    assert not re.search(r"\b(plt|ax|fig|print|matplotlib)\b", pipeline), pipeline
    assert "matplotlib" not in (out / "pyproject.toml").read_text()
    server = serve_folder(out)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        expected = client.post("/plot_mid_cell", json={"n": 3})
        assert expected.status_code == 200, expected.text
        for i in range(100):  # warm-up: allocator pools, import caches
            client.post("/plot_mid_cell", json={"n": i % 7})
        before = _rss_kb(server.process.pid)
        started = time.perf_counter()
        for i in range(1000):
            assert client.post("/plot_mid_cell", json={"n": i % 7}).status_code == 200
        seconds = time.perf_counter() - started
        growth = _rss_kb(server.process.pid) - before
    print(f"RSS growth over 1,000 requests: {growth} kB ({seconds:.2f} s)")
    assert growth < 2048
    errors, bodies = asyncio.run(_hammer(server.url, 640, 16))
    print(f"16 concurrent connections, 640 requests: {errors} errors")
    assert errors == 0
    assert len(bodies) == 7  # one answer per distinct `n`, none mixed up


def test_loops_and_ifs_that_only_draw_are_dropped(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "import matplotlib.pyplot as plt\nverbose = True", []),
        ("code", "cols = ['a', 'b']", ["parameters"]),
        (
            "code",
            "data = {c: len(c) for c in cols}\nfig, axes = plt.subplots(1, 2)\n"
            "for ax, c in zip(axes, cols):\n    ax.bar([c], [data[c]])\n    ax.set_title(c)\n"
            "if verbose:\n    print(data)\nelse:\n    display(data)\n"
            "for c in cols:\n    data[c] += 1\n    print(c)\n"
            "for c in make_cols():\n    print(c)",
            [],
        ),
        ("code", "def make_cols():\n    return []", ["setup"]),
        ("code", "data", ["response"]),
    )
    code = _code(ex)
    assert "plt" not in code and "ax." not in code and "display" not in code
    assert "data[c] += 1" in code and "print(c)" in code  # the loop changes `data`
    assert "for c in make_cols():" in code  # an unknown call in the iterable: kept
    assert "for ax, c in zip(axes, cols):" in _sliced(ex)
    assert "if verbose:" in _sliced(ex)
    assert ex.imports == ()


def test_names_read_only_inside_their_own_scope_do_not_keep_a_drawing(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "import matplotlib.pyplot as plt", []),
        ("code", "n = 2", ["parameters"]),
        (
            "code",
            "fig = plt.figure()\nsquares = [fig * 2 for fig in range(n)]\n"
            "def total():\n    global fig\n    return fig\n",
            [],
        ),
        ("code", "{'s': squares, 't': total()}", ["response"]),
    )
    # `total` reads the global `fig` (declared `global`): the figure is kept.
    assert "fig = plt.figure()" in _code(ex)
    ex = _extract(
        tmp_path,
        ("code", "import matplotlib.pyplot as plt", []),
        ("code", "n = 2", ["parameters"]),
        ("code", "fig = plt.figure()\nsquares = [fig * 2 for fig in range(n)]", []),
        ("code", "{'s': squares}", ["response"]),
    )
    assert _sliced(ex) == ["fig = plt.figure()"]


def test_matplotlib_settings_in_setup_do_not_keep_the_handler_drawing(tmp_path: Path) -> None:
    # `plt.rcParams[...] = ...` in setup read `plt`, which made the slice believe the service
    # answers a drawing: every plot call of the handler was kept and drew on the shared figure.
    ex = _extract(
        tmp_path,
        (
            "code",
            "import numpy as np\nimport matplotlib as mpl\nimport matplotlib.pyplot as plt\n"
            "plt.rcParams['figure.figsize'] = (12, 4)\nmpl.rcParams['lines.linewidth'] = 2\n"
            "plt.style.use('ggplot')\nreadings = np.arange(10.0)",
            [],
        ),
        ("code", "threshold = 1.0", ["parameters"]),
        (
            "code",
            "z = (readings - readings.mean()) / readings.std()\nplt.plot(z)\n"
            "plt.axhline(threshold, ls='--')\nhits = np.flatnonzero(abs(z) > threshold)",
            [],
        ),
        ("code", "{'count': len(hits)}", ["response"]),
    )
    code = _code(ex)
    assert not re.search(r"\b(plt|mpl)\b", code), code
    assert "hits = np.flatnonzero(abs(z) > threshold)" in code
    assert "plt.rcParams['figure.figsize'] = (12, 4)" in _sliced(ex)
    assert "plt.axhline(threshold, ls='--')" in _sliced(ex)
    assert ex.modules == ("numpy",)


def test_kaggles_file_listing_loop_is_dropped(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        (
            "code",
            "import os\nimport glob\nfor dirname, _, filenames in os.walk('input'):\n"
            "    for filename in filenames:\n        print(os.path.join(dirname, filename))\n"
            "for name in sorted(glob.glob('input/*.csv')):\n    print(name)\nn0 = 1",
            [],
        ),
        ("code", "x = 2", ["parameters"]),
        ("code", "{'x': x + n0}", ["response"]),
    )
    code = _code(ex)
    assert "os.walk" not in code and "glob" not in code and "print" not in code, code
    assert _sliced(ex) == [
        "for dirname, _, filenames in os.walk('input'):",
        "for name in sorted(glob.glob('input/*.csv')):",
    ]
    assert ex.imports == ()


def test_a_drawing_chain_is_dropped_whatever_it_calls_first(tmp_path: Path) -> None:
    """`.apply(np.median).plot(kind="bar")` only draws, as `.median().plot()` does (issue 22)."""
    ex = _extract(
        tmp_path,
        (
            "code",
            "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\n"
            "plt.style.use('ggplot')\n"
            "df = pd.DataFrame({'v': range(60)}, index=pd.date_range('2024-01-01', periods=60))",
            [],
        ),
        ("code", "k = 2", ["parameters"]),
        (
            "code",
            "df.resample('ME').apply(np.median).plot(kind='bar')\n"
            "df.groupby(df.index.month)['v'].agg(np.mean).plot.bar(rot=0)\n"
            "df.resample('ME').median().plot()\nmonthly = df.resample('ME').sum()\n"
            "monthly.pipe(lambda m: m * k).plot(title='scaled')",
            [],
        ),
        ("code", "{'last': int(monthly['v'].iloc[-1]) * k}", ["response"]),
    )
    code = _code(ex)
    assert code.splitlines()[-1] == "monthly = df.resample('ME').sum()", code
    assert "plot" not in code and "style" not in code
    assert ex.modules == ("pandas",)  # numpy only fed a drawing: not pinned


def test_a_dropped_line_that_draws_keeps_its_draws(tmp_path: Path) -> None:
    """Dropping `print(df.sample(2))` would shift every later draw (issue 22)."""
    ex = _extract(
        tmp_path,
        (
            "code",
            "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\n"
            "np.random.seed(0)\ndf = pd.DataFrame({'v': range(40)})\ndf.sample(3)\n"
            "plt.hist(np.random.randn(100))",
            [],
        ),
        ("code", "n = 2", ["parameters"]),
        ("code", "print(df.sample(2))\npicked = df.sample(n)", []),
        ("code", "picked['v'].tolist()", ["response"]),
    )
    assert ex.setup[0].code.splitlines()[-2:] == ["df.sample(3)", "np.random.randn(100)"]
    assert ex.handler[0].code.splitlines() == ["df.sample(2)", "picked = df.sample(n)"]
    kept = [d.what for d in ex.dropped if "its random draws are kept" in d.why]
    assert kept == ["plt.hist(np.random.randn(100))", "print(df.sample(2))"]
    assert "matplotlib" not in ex.modules
