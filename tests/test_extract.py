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


def test_cell_magics_are_dropped_and_listed_by_their_real_names(tmp_path: Path) -> None:
    ex = _extract(
        tmp_path,
        ("code", "%%capture\n!pip install -q scikit-learn==1.5 pandas\nimport math", []),
        ("code", "%%writefile notes.txt\nnothing to see", []),
        ("code", "%%bash\necho hello", []),
        ("code", "x = 2.0", ["parameters"]),
        ("code", "%%timeit\nsum(range(100))", []),
        ("code", "%%time\n%%capture\ny = math.sqrt(x)", []),
        ("code", "{'y': y}", ["response"]),
    )
    listed = {(d.what, d.why, d.location.cell_index, d.location.line) for d in ex.dropped}
    assert listed == {
        ("%%capture", "cell magic %%capture: its body is promoted, not the magic", 0, 1),
        ("!pip install -q scikit-learn==1.5 pandas", "shell escape", 0, 2),
        ("%%writefile notes.txt", "cell magic %%writefile: the service does not run it", 1, 1),
        ("%%bash", "cell magic %%bash: the service does not run it", 2, 1),
        ("%%timeit", "cell magic %%timeit: the service does not run it", 4, 1),
        ("%%time", "cell magic %%time: its body is promoted, not the magic", 5, 1),
        ("%%capture", "cell magic %%capture: its body is promoted, not the magic", 5, 2),
    }
    assert ex.imports == ("import math",)
    assert ex.handler[0].code.strip() == "y = math.sqrt(x)"


@pytest.mark.parametrize(
    ("cell", "named"),
    [("%%capture out\nprint('hi')", "`%%capture out` (cell 1)"), ("log = !ls", "`log = !ls`")],
)
def test_a_magic_output_the_answer_needs_is_an_error_naming_it(
    tmp_path: Path, cell: str, named: str
) -> None:
    name = "out" if "capture" in cell else "log"
    with pytest.raises(ContractError) as info:
        _extract(
            tmp_path,
            ("code", cell, []),
            ("code", "x = 1", ["parameters"]),
            ("code", f"{{'x': x, 'log': str({name})}}", ["response"]),
        )
    assert named in info.value.message
    assert "a magic the service does not run" in info.value.message
    assert info.value.location.cell_index == 2
