"""``_verify``: the generated pipeline, run in a fresh process, reproduces the notebook."""

from pathlib import Path

import pytest

from promoter import VerificationError
from promoter.building.verify import first_difference, verify_service
from promoter.reading.notebook import Notebook, read_notebook
from tests.helpers import write_notebook


def test_first_difference_names_the_path() -> None:
    assert first_difference({"a": [1, 2.0]}, {"a": [1, 2.0 + 1e-12]}) is None
    assert first_difference({"a": [1, 3]}, {"a": [1, 2]}) == "response['a'][1]: 3 != 2"
    assert "keys" in (first_difference({"a": 1}, {"b": 1}) or "")
    assert first_difference([1], [1, 2]) == "response: 1 items != 2"


def _service(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "svc"
    (folder / "app").mkdir(parents=True)
    (folder / "app/__init__.py").write_text("")
    (folder / "app/jsonable.py").write_text("def to_jsonable(v):\n    return v\n")
    (folder / "app/models.py").write_text(
        "from pydantic import BaseModel, RootModel\n"
        "class NbRequest(BaseModel):\n    x: int = 1\n"
        "class NbResponse(RootModel[dict[str, int]]):\n    pass\n"
    )
    (folder / "app/pipeline.py").write_text(
        "def setup():\n    pass\n\n\ndef run(request):\n    # cell 2 (id c1)\n" + body
    )
    # Verification imports the whole app, as uvicorn does, and asks the route a second time.
    (folder / "app/main.py").write_text(
        "from typing import Any\n"
        "from fastapi import FastAPI\n"
        "from app import models, pipeline\n"
        "app = FastAPI()\n"
        "@app.post('/nb')\n"
        "def nb(request: models.NbRequest) -> Any:\n"
        "    return pipeline.run(request)\n"
    )
    return folder


def _notebook(tmp_path: Path) -> Notebook:
    """The notebook every verification here stands for: ``x = 1`` answered as ``{'x': x}``."""
    return read_notebook(
        write_notebook(
            tmp_path / "nb.ipynb",
            ("code", "x = 1", ["parameters"]),
            ("code", "{'x': x}", ["response"]),
        )
    )


def test_verify_compares_the_answer_and_the_model(tmp_path: Path) -> None:
    nb = _notebook(tmp_path)
    folder = _service(tmp_path, "    return {'x': request.x}\n")
    [same] = verify_service(folder, [(nb, "app", "NbResponse", {"x": 1})])
    assert same.matches and same.difference is None and same.model_error is None
    [other] = verify_service(folder, [(nb, "app", "NbResponse", {"x": 2})])
    assert not other.matches and other.difference == "response['x']: 1 != 2"


def test_a_failing_pipeline_names_the_cell(tmp_path: Path) -> None:
    nb = read_notebook(
        write_notebook(
            tmp_path / "nb.ipynb",
            ("code", "x = 1", ["parameters"]),
            ("code", "{'x': 1 / 0}", ["response"]),
        )
    )
    folder = _service(tmp_path, "    return {'x': 1 / 0}\n")
    with pytest.raises(VerificationError, match="ZeroDivisionError") as caught:
        verify_service(folder, [(nb, "app", "NbResponse", {"x": 1})])
    assert caught.value.location.cell_index == 1


def test_cell_markers_count_cells_from_one(tmp_path: Path) -> None:
    from promoter.building.filters import cellref

    nb = read_notebook(
        write_notebook(
            tmp_path / "nb.ipynb",
            ("code", "x = 1", ["parameters"]),
            ("code", "y = x", []),
            ("code", "{'y': y}", ["response"]),
        )
    )
    third = nb.cells[2]
    assert cellref(third) == f"cell 3 (id {third.id})"


def test_a_file_the_run_did_not_see_names_the_files_glob_deep_in_a_library(
    tmp_path: Path,
) -> None:
    # pyarrow reads parquet in C (no audit event), so the file is not copied; its error is
    # raised many frames below the pipeline, which the report once cut away with the cell.
    nb = _notebook(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.parquet").write_bytes(b"PAR1")
    deep = "".join(f"def f{i}():\n    f{i + 1}()\n" for i in range(12))
    folder = _service(tmp_path, "    from app.deep import f0\n\n    return f0()\n")
    missing = "def f12():\n    raise FileNotFoundError('data/t.parquet')\n"
    (folder / "app" / "deep.py").write_text(deep + missing)
    with pytest.raises(VerificationError, match="FileNotFoundError") as caught:
        verify_service(folder, [(nb, "app", "NbResponse", {"x": 1})])
    assert caught.value.location.cell_index == 1
    assert 'metadata.promoter.files, e.g. "files": ["data/t.parquet"]' in str(caught.value.hint)


def test_a_local_module_left_behind_names_its_cell_and_the_files_glob(tmp_path: Path) -> None:
    nb = read_notebook(
        write_notebook(
            tmp_path / "nb.ipynb",
            ("code", "import math\nfrom helpers import clean  # ours", []),
            ("code", "x = 1", ["parameters"]),
            ("code", "{'x': x}", ["response"]),
        )
    )
    (tmp_path / "helpers.py").write_text("def clean(s):\n    return s\n")
    folder = _service(tmp_path, "    return {'x': request.x}\n")
    pipeline = folder / "app" / "pipeline.py"
    pipeline.write_text("import math\nfrom helpers import clean\n\n\n" + pipeline.read_text())
    with pytest.raises(VerificationError, match="No module named 'helpers'") as caught:
        verify_service(folder, [(nb, "app", "NbResponse", {"x": 1})])
    assert (caught.value.location.cell_index, caught.value.location.line) == (0, 2)
    assert 'metadata.promoter.files, e.g. "files": ["helpers.py"]' in str(caught.value.hint)


@pytest.mark.slow
def test_a_setup_that_never_ends_is_stopped_and_leaves_nothing_running(tmp_path: Path) -> None:
    import random

    import psutil

    marker = f"600.{random.randrange(10**8):08d}"
    nb = _notebook(tmp_path)
    folder = _service(tmp_path, "    return {'x': request.x}\n")
    # Setup starts a helper, then waits for something that never comes (a join on a thread
    # or a child that runs for ten minutes).
    (folder / "app/pipeline.py").write_text(
        "import subprocess, time\n\n\ndef setup():\n"
        f"    subprocess.Popen(['sleep', '{marker}'])\n"
        "    time.sleep(600)\n\n\n"
        "def run(request):\n    return {'x': request.x}\n"
    )
    with pytest.raises(VerificationError, match="still running its setup") as caught:
        verify_service(folder, [(nb, "app", "NbResponse", {"x": 1})], timeout=10)
    assert "after 10 s, and was stopped" in caught.value.message
    assert caught.value.location.notebook == nb.path
    assert "daemon=True" in (caught.value.hint or "")
    left = [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if marker in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert left == []
