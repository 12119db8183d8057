"""Prove it as deployed (issue 21): the service's own environment, varied and concurrent requests.

Each notebook here is in the image of a case that passed ``convert`` before: a leak between
requests the static rules miss (``type(self).attr``, an ``lru_cache``'d dict, a local module's
state, ``contextlib.redirect_stdout``), a dependency no import names (a plotting call through
pandas, a spreadsheet backend, the classes of a joblib model), and a seeded notebook whose
dropped display lines drew from its generator. Every conversion runs the real CLI; its service
is proven in an environment built from its own pins (cached for the whole suite by conftest).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from promoter.building.environment import LOCK_FILE
from promoter.building.fingerprint import digest
from promoter.building.samples import generated_requests
from tests.helpers import run_cli, write_notebook


def _pins(folder: Path) -> list[str]:
    with (folder / "pyproject.toml").open("rb") as file:
        return [str(p) for p in tomllib.load(file)["project"]["dependencies"]]


def _names(pins: list[str]) -> set[str]:
    return {re.split(r"[=<>]", pin)[0].lower() for pin in pins}


def _locked(folder: Path) -> set[str]:
    text = (folder / LOCK_FILE).read_text()
    return {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", text, re.M)}


def test_digest_is_stable_and_sees_changes() -> None:
    table = {"apple": [1.0, 2.0], "pear": {"price": 3}}
    first = digest(table)
    assert digest(table) == first
    table["pear"]["price"] = 4
    assert digest(table) != first


def test_digest_of_a_table_follows_its_data() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    first = digest(frame)
    frame[["a", "b"]].sum()  # a read
    assert digest(frame) == first
    frame.loc[0, "a"] = 7
    assert digest(frame) != first


SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sepal_length": {"type": "number", "default": 5.1},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "species": {"enum": ["setosa", "versicolor"], "default": "setosa"},
        "note": {"type": "string", "default": ""},
        "strict": {"type": "boolean", "default": False},
        "weights": {"type": "array", "items": {"type": "number"}, "default": []},
        "mode": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
}


def test_generated_requests_are_valid_distinct_and_repeatable() -> None:
    first = generated_requests(SCHEMA, 3, [{}])
    assert first == generated_requests(SCHEMA, 3, [{}])  # derandomised
    assert len(first) == 3 and len({json.dumps(b, sort_keys=True) for b in first}) == 3
    for body in first:
        assert set(body) == set(SCHEMA["properties"])
        assert 1 <= body["top_k"] <= 10 and body["species"] in ("setosa", "versicolor")
        assert -100 <= body["sepal_length"] <= 100  # near the default, not 1e308
        assert isinstance(body["strict"], bool) and isinstance(body["weights"], list)


def test_nothing_is_generated_without_parameters_or_when_asked_for_none() -> None:
    assert generated_requests({"type": "object", "properties": {}}, 2) == []
    assert generated_requests(SCHEMA, 0) == []


# --- leaks between requests the static rules miss ------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_class_attribute_changed_through_type_self_is_found(tmp_path: Path) -> None:
    """The answers stay equal; the fingerprint of the class attribute does not."""
    notebook = write_notebook(
        tmp_path / "scorer.ipynb",
        (
            "code",
            "class Scorer:\n    last = None\n\n    def score(self, x):\n"
            "        type(self).last = x\n        return x * 2\n\n\nscorer = Scorer()",
            [],
        ),
        ("code", "x = 1.5", ["parameters"]),
        ("code", "doubled = scorer.score(x)", []),
        ("code", "{'doubled': doubled}", ["response"]),
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900)
    assert result.returncode == 1, result.output
    assert "changed state that requests share" in result.output, result.output
    assert "Scorer.last" in result.output
    assert not (tmp_path / "svc").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_lru_cached_setup_dict_changed_by_the_handler_is_found(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "prices.ipynb",
        (
            "code",
            "from functools import lru_cache\n\n\n@lru_cache\ndef prices():\n"
            "    return {'apple': 1.0, 'pear': 2.0}",
            [],
        ),
        ("code", "fruit = 'apple'\nmarkup = 0.0", ["parameters"]),
        ("code", "table = prices()\ntable[fruit] = table[fruit] * (1 + markup)", []),
        ("code", "{'price': table[fruit]}", ["response"]),
        metadata={"examples": [{"fruit": "pear", "markup": 0.5}]},
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900)
    assert result.returncode == 1, result.output
    assert "POST /prices" in result.output, result.output
    assert '"fruit": "pear"' in result.output or "prices()" in result.output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_state_in_a_local_helper_module_is_found(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text(
        "LAST = {}\n\n\ndef shout(user):\n    LAST['user'] = user\n    return user.upper()\n"
    )
    notebook = write_notebook(
        tmp_path / "greet.ipynb",
        ("code", "import helpers", []),
        ("code", "user = 'ada'", ["parameters"]),
        ("code", "loud = helpers.shout(user)", []),
        ("code", "{'loud': loud}", ["response"]),
        metadata={"files": ["helpers.py"]},
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900)
    assert result.returncode == 1, result.output
    assert "helpers.LAST" in result.output, result.output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_redirect_stdout_in_the_handler_is_found_under_concurrency(tmp_path: Path) -> None:
    """sys.stdout is the process's: concurrent requests write into each other's buffers."""
    notebook = write_notebook(
        tmp_path / "report.ipynb",
        ("code", "import contextlib\nimport io\nimport time", []),
        ("code", "user = 'ada'\nlines = 3", ["parameters"]),
        (
            "code",
            "buffer = io.StringIO()\nwith contextlib.redirect_stdout(buffer):\n"
            "    for n in range(lines):\n        print(user, n)\n        time.sleep(0.01)\n"
            "text = buffer.getvalue()",
            [],
        ),
        ("code", "{'text': text}", ["response"]),
        metadata={"examples": [{"user": "grace", "lines": 4}, {"user": "linus", "lines": 2}]},
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900)
    assert result.returncode == 1, result.output
    assert "concurrent requests" in result.output or "cell" in result.output, result.output


# --- dependencies no import names ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_plot_through_pandas_pins_matplotlib(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "chart.ipynb",
        ("code", "import pandas as pd", []),
        ("code", "points = 4", ["parameters"]),
        (
            "code",
            "frame = pd.DataFrame({'x': range(points), 'y': range(points)})\n"
            "axes = frame.plot(x='x', y='y')\nticks = len(axes.get_lines()[0].get_xdata())",
            [],
        ),
        ("code", "{'ticks': ticks}", ["response"]),
    )
    out = tmp_path / "svc"
    result = run_cli("convert", notebook, "-o", out, timeout=900)
    assert result.returncode == 0, result.output
    assert "matplotlib" in _names(_pins(out))
    assert {"matplotlib", "pandas"} <= _locked(out)
    dockerfile = (out / "Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "--hash=sha256:" in (out / LOCK_FILE).read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_read_excel_pins_its_backend(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    pandas.DataFrame({"region": ["north", "south"], "sales": [10, 20]}).to_excel(
        tmp_path / "sales.xlsx", index=False
    )
    notebook = write_notebook(
        tmp_path / "sales.ipynb",
        ("code", "import pandas as pd\n\nsales = pd.read_excel('sales.xlsx')", []),
        ("code", "region = 'north'", ["parameters"]),
        ("code", "total = int(sales.loc[sales.region == region, 'sales'].sum())", []),
        ("code", "{'total': total}", ["response"]),
    )
    out = tmp_path / "svc"
    result = run_cli("convert", notebook, "-o", out, timeout=900)
    assert result.returncode == 0, result.output
    assert "openpyxl" in _names(_pins(out))
    assert "openpyxl" in _locked(out)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_joblib_model_pins_the_library_of_its_classes(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    linear = pytest.importorskip("sklearn.linear_model")
    model = linear.LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
    joblib.dump(model, tmp_path / "model.joblib")
    notebook = write_notebook(
        tmp_path / "predict.ipynb",
        ("code", "import joblib\n\nmodel = joblib.load('model.joblib')", []),
        ("code", "x = 4.0", ["parameters"]),
        ("code", "y = float(model.predict([[x]])[0])", []),
        ("code", "{'y': round(y, 6)}", ["response"]),
        metadata={"examples": [{"x": 10.0}]},
    )
    out = tmp_path / "svc"
    result = run_cli("convert", notebook, "-o", out, timeout=900)
    assert result.returncode == 0, result.output
    assert {"joblib", "scikit-learn"} <= _names(_pins(out)), _pins(out)
    assert "proof: environment passed" in result.output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_proof_that_cannot_run_says_so_and_how_to_skip_it(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "{'x': x}", ["response"]),
    )
    # No index and cold caches: what a machine without network sees on its first conversion.
    offline = {
        "UV_OFFLINE": "1",
        "PROMOTER_CACHE_DIR": str(tmp_path / "cold"),
        "UV_CACHE_DIR": str(tmp_path / "uv"),
    }
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900, env=offline)
    assert result.returncode == 1, result.output
    assert "cannot prove the service as deployed" in result.output
    assert "--no-isolated-env" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "svc").exists()
    skipped = run_cli("convert", notebook, "-o", tmp_path / "svc", "--no-isolated-env", "--json")
    assert skipped.returncode == 0, skipped.output
    report = json.loads(skipped.stdout)
    assert "environment" not in [step["step"] for step in report["proof"]]
    assert not (tmp_path / "svc" / LOCK_FILE).exists()


# --- answers that only matched for the defaults ---------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_seeded_notebook_whose_dropped_lines_drew_is_found(tmp_path: Path) -> None:
    """The dropped print drew from the generator: the service's draws are not the notebook's."""
    notebook = write_notebook(
        tmp_path / "noise.ipynb",
        ("code", "import numpy as np\n\nrng = np.random.default_rng(0)", []),
        ("code", "scale = 1.0", ["parameters"]),
        ("code", "print(rng.normal())\nnoise = (rng.normal(size=3) * scale).round(6)", []),
        ("code", "{'noise': noise.tolist()}", ["response"]),
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", "--strict", timeout=900)
    assert result.returncode == 1, result.output
    assert "cell" in result.output, result.output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_figure_kept_on_every_request_is_reported(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "leak.ipynb",
        ("code", "import matplotlib\n\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt", []),
        ("code", "points = 200000", ["parameters"]),
        ("code", "figure = plt.figure()\nplt.plot(range(points))\nlines = len(figure.axes)", []),
        ("code", "{'lines': lines}", ["response"]),
    )
    result = run_cli("convert", notebook, "-o", tmp_path / "svc", timeout=900)
    assert result.returncode == 0, result.output
    assert "grew by" in result.output, result.output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_check_json_reports_each_step_of_the_proof(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "tip.ipynb",
        ("code", "rate = 0.15", ["setup"]),
        ("code", "bill = 20.0\npeople = 2", ["parameters"]),
        ("code", "{'each': round(bill * (1 + rate) / people, 2)}", ["response"]),
    )
    result = run_cli("check", notebook, "--json", timeout=900)
    assert result.returncode == 0, result.output
    (report,) = json.loads(result.stdout)["notebooks"]
    (fidelity,) = [o for o in report["checks"] if o["check"] == "fidelity"]
    steps = {step["step"]: step for step in fidelity["steps"]}
    names = ["environment", "pipelines", "differential", "concurrency", "state", "memory"]
    assert list(steps) == names
    assert all(step["status"] == "passed" for step in steps.values())
    assert (
        "2 generated" in steps["differential"]["detail"]
        or "3 parameter" in steps["differential"]["detail"]
    ), steps["differential"]
