from pathlib import Path

import pytest

from promoter import ContractError
from promoter.analysis.extract import extract
from promoter.analysis.parameters import infer_request
from promoter.reading.notebook import read_notebook
from promoter.reading.source import response_expression
from tests.helpers import write_notebook


def _extract(tmp_path: Path, *cells: tuple[str, str, list[str]]):
    nb = read_notebook(write_notebook(tmp_path / "nb.ipynb", *cells))
    return extract(nb, infer_request(nb), response_expression(nb))


def test_magics_and_display_lines_are_dropped_and_reported(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "%matplotlib inline\n!pip install nothing\nimport math\nimport os", []),
        ("code", "x = 2.0", ["parameters"]),
        ("code", "y = math.sqrt(x)\ny\ndisplay(y)\nfrom collections import Counter", []),
        ("code", "%time z = y * 2\n{'z': z}", ["response"]),
    )
    whys = sorted(d.why for d in ex.dropped)
    assert whys == [
        "IPython magic %matplotlib",
        "display-only expression",
        "display-only expression",
        "import unused by the service",
        "import unused by the service",
        "shell escape",
    ]
    assert ex.imports == ("import math",)
    assert "z = y * 2" in ex.handler[-1].code  # %time keeps its statement
    assert ex.response == "{'z': z}"
    assert {d.location.cell_index for d in ex.dropped} == {0, 2}


def test_setup_names_are_globals_and_reassignments_rebind(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "table = {'a': 1}\ndef lookup(k):\n    return table[k]", []),
        ("code", "key = 'a'", ["parameters"]),
        ("code", "table = dict(table)\ntable[key] = 2", []),
        ("code", "lookup(key)", ["response"]),
    )
    assert ex.setup_globals == ("lookup", "table")
    assert ex.rebind == ("table",)


def test_a_name_only_a_skipped_cell_defines_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError) as info:
        _extract(
            tmp_path,
            ("code", "x = 1", ["parameters"]),
            ("code", "helper = 10", ["skip"]),
            ("code", "x + helper", ["response"]),
        )
    assert info.value.location.cell_index == 2
    assert "skipped cell 2 (id " in info.value.message  # counted from 1, as JupyterLab does


def test_run_argument_avoids_notebook_names(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "request = 'a'", ["parameters"]),
        ("code", "request.upper()", ["response"]),
    )
    assert ex.request_arg != "request"


def test_third_party_modules_are_listed_for_pinning(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "import numpy as np\nimport json", []),
        ("code", "x = 1", ["parameters"]),
        ("code", "json.dumps(np.arange(x).tolist())", ["response"]),
    )
    assert ex.modules == ("numpy",)


def test_an_import_a_parameter_shadows_is_not_hoisted(tmp_path: Path) -> None:
    # Regression (found by the generator fuzz test): a parameter named like an import made the
    # import look used, but inside run() the parameter shadows it: ruff F401.
    ex = _extract(
        tmp_path,
        ("code", "from pydantic import Field", []),
        ("code", "Field = 0", ["parameters"]),
        ("code", "{'Field': Field}", ["response"]),
    )
    assert ex.imports == ()
    assert [d.what for d in ex.dropped] == ["from pydantic import Field"]
