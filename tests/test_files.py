"""Data files travel with the service: observed in the run, copied, shipped, read in place."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pathspec
import pytest

import promoter
from promoter import ContractError
from tests.helpers import free_port, run_cli, wait_ready, write_notebook

SETUP_READS = """\
import joblib
import pandas as pd

path = "data/"
table = pd.read_csv(path + "x.csv")
model = joblib.load("models/m.joblib")
"""


def _project(root: Path) -> Path:
    """A notebook folder with a CSV and a joblib model, read through relative paths."""
    import joblib
    import pandas as pd

    (root / "data").mkdir(parents=True)
    (root / "models").mkdir()
    pd.DataFrame({"v": [1.5, 2.5, 4.0], "name": ["a", "b", "c"]}).to_csv(
        root / "data" / "x.csv", index=False
    )
    joblib.dump({"weight": 0.25, "bias": 1.0}, root / "models" / "m.joblib")
    (root / "unused.csv").write_text("never,read\n")
    return write_notebook(
        root / "scores.ipynb",
        ("markdown", "# Scores\n\nScores from a table and a model on disk.", []),
        ("code", SETUP_READS, []),
        ("code", "k = 2  # multiplier", ["parameters"]),
        ("code", "total = float(table['v'].sum()) * k * model['weight'] + model['bias']", []),
        ("code", "{'total': total, 'rows': len(table)}", ["response"]),
    )


@pytest.mark.slow
def test_a_converted_service_carries_its_data_and_answers_after_a_move(
    tmp_path: Path, serve_folder
) -> None:
    project = tmp_path / "project"
    notebook = _project(project)
    out = tmp_path / "built" / "service"
    shown = run_cli("inspect", notebook.name, "--json", cwd=project)
    assert shown.returncode == 0, shown.output
    expected = json.loads(shown.stdout)["sample_response"]
    assert json.loads(shown.stdout)["files"] == ["data/x.csv", "models/m.joblib"]

    result = run_cli("convert", notebook.name, "-o", out, cwd=project)

    assert result.returncode == 0, result.output
    assert "data files copied" in result.stdout and "models/m.joblib" in result.stdout
    assert (out / "data" / "x.csv").read_bytes() == (project / "data" / "x.csv").read_bytes()
    assert (out / "models" / "m.joblib").is_file()
    assert not (out / "unused.csv").exists()
    lock = json.loads((out / "promoter.lock.json").read_text())
    assert {"data/x.csv", "models/m.joblib"} <= set(lock["files"])
    assert "from this folder" in (out / "README.md").read_text()
    assert "`data/x.csv`, `models/m.joblib`." in (out / "README.md").read_text()
    # The image gets the whole folder (`COPY . .`) except what .dockerignore names.
    assert "\nCOPY . .\n" in (out / "Dockerfile").read_text()
    patterns = (out / ".dockerignore").read_text().splitlines()
    ignored = pathspec.GitIgnoreSpec.from_lines(patterns)
    assert not [f for f in ("data/x.csv", "models/m.joblib") if ignored.match_file(f)]

    moved = tmp_path / "elsewhere" / "service"
    moved.parent.mkdir()
    shutil.move(out, moved)
    project.rename(tmp_path / "project-gone")
    server = serve_folder(moved)  # uvicorn with cwd = the moved folder
    answer = httpx.post(server.url + "/scores", json={}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected
    other = httpx.post(server.url + "/scores", json={"k": 4}, timeout=30)
    assert other.json() == {"total": 8.0 * 4 * 0.25 + 1.0, "rows": 3}


def test_every_way_of_reading_is_observed_and_outputs_are_not(tmp_path: Path) -> None:
    import numpy as np

    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "words.txt").write_text("alpha beta gamma")
    np.save(tmp_path / "inputs" / "vector.npy", np.arange(4))
    (tmp_path / "explore.csv").write_text("only,a,skip,cell,reads,this\n")
    (tmp_path / ".env").write_text("API_KEY=secret\n")
    with sqlite3.connect(tmp_path / "inputs" / "lookup.db") as db:
        db.execute("create table t (a)")
    notebook = write_notebook(
        tmp_path / "reader.ipynb",
        ("code", "import numpy as np\nfrom pathlib import Path", []),
        ("code", "settings = open('.env').read()  # python-dotenv style: config, not data", []),
        ("code", "words = Path('inputs', 'words.txt').read_text().split()", []),
        ("code", "vector = np.load('inputs/vector.npy')", []),
        ("code", "import sqlite3\nlookup = sqlite3.connect('inputs/lookup.db')", []),
        ("code", "open('explore.csv').read()", ["skip"]),
        ("code", "n = 1", ["parameters"]),
        ("code", "Path('scratch.txt').write_text('x')\nback = open('scratch.txt').read()", []),
        ("code", "{'words': words[:n], 'sum': int(vector.sum()), 'back': back}", ["response"]),
    )

    inspection = promoter.inspect(notebook)

    found = ["inputs/lookup.db", "inputs/vector.npy", "inputs/words.txt"]
    assert [f.path for f in inspection.files] == found
    assert inspection.to_dict()["files"] == found


def test_a_glob_adds_files_only_other_parameters_read(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    for name in ("en", "fr"):
        (tmp_path / "tables" / f"{name}.json").write_text(json.dumps({"hello": name}))
    notebook = write_notebook(
        tmp_path / "greet.ipynb",
        ("code", "import json", []),
        ("code", "lang = 'en'", ["parameters"]),
        ("code", "table = json.load(open(f'tables/{lang}.json'))", []),
        ("code", "table", ["response"]),
        metadata={"files": ["tables/*.json"]},
    )

    inspection = promoter.inspect(notebook)

    assert [f.path for f in inspection.files] == ["tables/en.json", "tables/fr.json"]


def test_a_glob_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "x", ["response"]),
        metadata={"files": ["models/*.onnx"]},
    )

    with pytest.raises(ContractError, match="matches no file"):
        promoter.inspect(notebook)


@pytest.mark.slow
def test_a_file_outside_the_notebook_folder_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "shared.csv").write_text("a\n1\n")
    notebook = write_notebook(
        tmp_path / "project" / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "rows = open('../shared.csv').read().splitlines()", []),
        ("code", "{'rows': len(rows) * x}", ["response"]),
    )

    result = run_cli("convert", notebook, "-o", tmp_path / "out")

    assert result.returncode in (1, 2), result.output
    assert "../shared.csv" in result.stderr and "outside its folder" in result.stderr
    assert "mounted volume" in result.stderr and "cell 2" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_notebook_in_notebooks_reads_data_of_its_project_in_the_service(
    tmp_path: Path, serve_folder
) -> None:
    """`notebooks/nb.ipynb` reading `../data/x.csv` in a project (pyproject.toml at its root):
    the file travels as data/x.csv and the pipeline works in notebooks/ (issue 22)."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n')
    (project / "data" / "x.csv").write_text("v\n1.5\n2.5\n")
    notebook = write_notebook(
        project / "notebooks" / "nb.ipynb",
        ("code", "import pandas as pd\ntable = pd.read_csv('../data/x.csv')", []),
        ("code", "k = 2.0", ["parameters"]),
        ("code", "{'total': float(table.v.sum() * k)}", ["response"]),
    )
    out = tmp_path / "out"

    result = run_cli("convert", notebook, "-o", out, cwd=tmp_path)

    assert result.returncode == 0, result.output
    assert (out / "data" / "x.csv").read_text() == "v\n1.5\n2.5\n"
    assert (out / "notebooks").is_dir()
    shutil.rmtree(project)
    server = serve_folder(out)
    answer = httpx.post(f"{server.url}/nb", json={"k": 3.0}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"total": 12.0}


@pytest.mark.slow
def test_a_symlink_leading_outside_the_project_root_is_refused(tmp_path: Path) -> None:
    """Judged by its real path: a link inside the project to a file outside it is refused."""
    (tmp_path / "secret.csv").write_text("a\n1\n")
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "data" / "x.csv").symlink_to(tmp_path / "secret.csv")
    notebook = write_notebook(
        project / "notebooks" / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "rows = open('../data/x.csv').read().splitlines()", []),
        ("code", "{'rows': len(rows) * x}", ["response"]),
    )

    result = run_cli("convert", notebook, "-o", tmp_path / "out")

    assert result.returncode in (1, 2), result.output
    assert "data/x.csv is a link to" in result.stderr, result.output
    assert f"outside the notebook's project root {project}" in result.stderr
    assert "cell 2" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_the_project_root_is_the_nearest_marked_folder_or_the_declared_one(
    tmp_path: Path,
) -> None:
    from promoter.analysis.files import project_root
    from promoter.reading.notebook import read_notebook

    cells = (("code", "x = 1", ["parameters"]), ("code", "x", ["response"]))
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "sub" / "setup.cfg").parent.mkdir(parents=True)
    (tmp_path / "repo" / "sub" / "setup.cfg").write_text("[metadata]\n")
    nested = write_notebook(tmp_path / "repo" / "sub" / "notebooks" / "a.ipynb", *cells)
    assert project_root(read_notebook(nested)) == (tmp_path / "repo" / "sub").resolve()
    top = write_notebook(tmp_path / "repo" / "notebooks" / "b.ipynb", *cells)
    assert project_root(read_notebook(top)) == (tmp_path / "repo").resolve()
    declared = write_notebook(
        tmp_path / "repo" / "notebooks" / "c.ipynb", *cells, metadata={"root": "."}
    )
    assert project_root(read_notebook(declared)) == (tmp_path / "repo" / "notebooks").resolve()
    alone = write_notebook(tmp_path / "alone" / "d.ipynb", *cells)
    assert project_root(read_notebook(alone)) == (tmp_path / "alone").resolve()


def test_a_file_over_the_size_limit_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"\0" * 300_000)
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "blob = open('big.bin', 'rb').read()", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "{'size': len(blob) * x}", ["response"]),
        metadata={"max_file_mb": 0.1},
    )

    with pytest.raises(ContractError, match=r"big\.bin is 0 MB, over the 0.1 MB") as caught:
        promoter.inspect(notebook)
    assert "object storage" in str(caught.value)
    assert caught.value.location.cell_index == 0


@pytest.mark.slow
def test_an_edited_data_file_in_the_service_is_protected(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "rate.txt").write_text("0.5")
    notebook = write_notebook(
        tmp_path / "p" / "rate.ipynb",
        ("code", "rate = float(open('rate.txt').read())", []),
        ("code", "x = 2.0", ["parameters"]),
        ("code", "{'y': x * rate}", ["response"]),
    )
    out = tmp_path / "svc"
    conversion = promoter.convert([notebook], out)
    assert conversion.data_files == ["rate.txt"]
    assert conversion.to_dict()["data_files"] == ["rate.txt"]
    (out / "rate.txt").write_text("0.7")

    result = run_cli("convert", notebook, "-o", out)

    assert result.returncode != 0
    assert "rate.txt" in result.stderr and "edited" in result.stderr


def test_an_absolute_path_into_the_folder_travels_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "rates.txt").write_text("0.5")
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        (
            "code",
            "import os\nrate = float(open(os.path.join(os.getcwd(), 'rates.txt')).read())",
            [],
        ),
        ("code", "x = 2.0", ["parameters"]),
        ("code", "{'y': x * rate}", ["response"]),
    )

    inspection = promoter.inspect(notebook)

    assert [f.path for f in inspection.files] == ["rates.txt"]
    warned = [w for w in inspection.warnings if "absolute path" in w.message]
    assert len(warned) == 1 and warned[0].location.cell_index == 0


@pytest.mark.slow
def test_globbed_python_data_is_copied_byte_for_byte(tmp_path: Path) -> None:
    (tmp_path / "p" / "extra").mkdir(parents=True)
    (tmp_path / "p" / "extra" / "table.py").write_text("TABLE={'a':1}\n")
    notebook = write_notebook(
        tmp_path / "p" / "nb.ipynb",
        ("code", "x = 1", ["parameters"]),
        ("code", "{'x': x}", ["response"]),
        metadata={"files": ["extra/*.py"]},
    )

    result = run_cli("convert", notebook, "-o", tmp_path / "svc")

    assert result.returncode == 0, result.output
    assert (tmp_path / "svc" / "extra" / "table.py").read_text() == "TABLE={'a':1}\n"


@pytest.mark.slow
def test_check_runs_the_notebook_and_its_service_with_their_data(tmp_path: Path) -> None:
    notebook = _project(tmp_path / "project")

    result = run_cli("check", notebook.name, "--json", cwd=notebook.parent)

    assert result.returncode == 0, result.output
    checks = json.loads(result.stdout)["notebooks"][0]["checks"]
    statuses = {o["check"]: o["status"] for o in checks}
    assert statuses["execute"] == statuses["fidelity"] == "passed"


@pytest.mark.slow
def test_serve_finds_the_data_from_any_working_folder(tmp_path: Path) -> None:
    notebook = _project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "promoter", "serve", notebook, "--port", str(port), "--no-reload"],
        cwd=elsewhere,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", server, limit=240)
        answer = httpx.post(f"http://127.0.0.1:{port}/scores", json={"k": 1}, timeout=30)
        assert answer.json() == {"total": 8.0 * 0.25 + 1.0, "rows": 3}
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_a_data_file_where_the_service_keeps_its_own_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p" / "tests").mkdir(parents=True)
    (tmp_path / "p" / "tests" / "cases.json").write_text("[1, 2]")
    notebook = write_notebook(
        tmp_path / "p" / "nb.ipynb",
        ("code", "import json\ncases = json.load(open('tests/cases.json'))", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "{'n': len(cases) * x}", ["response"]),
    )

    with pytest.raises(ContractError, match=r"tests/cases\.json, a path the generated service"):
        promoter.convert([notebook], tmp_path / "svc")
    assert not (tmp_path / "svc").exists()


def test_a_parquet_file_read_in_c_travels_by_its_literal_path(tmp_path: Path) -> None:
    # pyarrow opens parquet files in C, without an audit event: the run does not see them.
    import pandas as pd

    (tmp_path / "data").mkdir()
    pd.DataFrame({"x": [1, 2, 3]}).to_parquet(tmp_path / "data" / "t.parquet")
    pd.DataFrame({"x": [9]}).to_parquet(tmp_path / "data" / "only_explored.parquet")
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "import pandas as pd\ndf = pd.read_parquet('data/t.parquet')", []),
        ("code", "pd.read_parquet('data/only_explored.parquet')", ["skip"]),
        ("code", "k = 2", ["parameters"]),
        ("code", "{'s': int(df.x.sum()) * k}", ["response"]),
    )

    inspection = promoter.inspect(notebook)

    assert [f.path for f in inspection.files] == ["data/t.parquet"]


def test_a_local_module_named_by_a_glob_travels_without_an_absolute_path_warning(
    tmp_path: Path,
) -> None:
    # The kernel imports it through its absolute sys.path entry: not the author's absolute path.
    (tmp_path / "text_utils.py").write_text("def norm(s):\n    return s.lower()\n")
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "from text_utils import norm", []),
        ("code", "s = 'A'", ["parameters"]),
        ("code", "{'s': norm(s)}", ["response"]),
        metadata={"files": ["text_utils.py"]},
    )

    inspection = promoter.inspect(notebook)

    assert [f.path for f in inspection.files] == ["text_utils.py"]
    assert not [w for w in inspection.warnings if "absolute path" in w.message]


def test_local_modules_travel_whole_packages_and_pin_their_imports(tmp_path: Path) -> None:
    from promoter.analysis.localmodules import local_module_files, local_module_imports

    (tmp_path / "mylib" / "sub").mkdir(parents=True)
    (tmp_path / "mylib" / "__init__.py").write_text("from mylib.core import scale\n")
    (tmp_path / "mylib" / "core.py").write_text("import numpy as np\nimport json\n")
    (tmp_path / "mylib" / "sub" / "__init__.py").write_text("")
    (tmp_path / "mylib" / "sub" / "late.py").write_text("from scipy import stats\n")
    (tmp_path / "mylib" / "__pycache__").mkdir()
    (tmp_path / "mylib" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"")
    (tmp_path / "helpers.py").write_text("import pandas as pd\nfrom mylib import scale\n")
    imported = {"mylib/__init__.py": None, "mylib/core.py": None, "helpers.py": None}

    files = local_module_files(tmp_path, imported)

    assert files == [
        "helpers.py",
        "mylib/__init__.py",
        "mylib/core.py",
        "mylib/sub/__init__.py",
        "mylib/sub/late.py",  # imported at request time only: the package travels whole
    ]
    pinned = local_module_imports([tmp_path / f for f in files], ["helpers", "mylib", "sklearn"])
    assert pinned == ("numpy", "pandas", "scipy", "sklearn")
