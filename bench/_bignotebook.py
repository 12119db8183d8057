"""A generated 500-cell notebook, the workload for timing ``promoter inspect --static``.

A seeded random mix of what long notebooks hold: markdown, setup cells (imports, constants, a
``%matplotlib`` magic), one parameters cell, hundreds of handler cells that build on earlier
variables, exploration cells tagged ``skip`` (some with magics and shell escapes), a response
cell and scratch cells after it.
"""

from __future__ import annotations

import random
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

PARAMETERS = """\
alpha: float = 0.5  # Weight of the first term
beta = 2  # Exponent
label = "sample"  # A label echoed back
flags = [True, False, True]  # Feature switches
scale: Annotated[float, Field(gt=0)] = 1.5  # Scale factor
mode: Literal["fast", "exact"] = "fast"  # How to compute
limits = {"low": 0.0, "high": 10.0}  # Clamp range
count = 12  # How many items
"""

SETUP = [
    "%matplotlib inline\nimport math\nimport statistics\nfrom typing import Annotated, Literal\n"
    "\nfrom pydantic import Field",
    "import json\nimport re\nfrom collections import Counter, defaultdict",
    "TABLE = {i: i * i for i in range(50)}\nWORDS = re.compile(r'[a-z]+')",
    "def clamp(x, low, high):\n    return max(low, min(high, x))",
]


def _handler(rng: random.Random, i: int, names: list[str]) -> str:
    a, b = rng.choice(names), rng.choice(names)
    kind = rng.randrange(6)
    if kind == 0:
        return f"h{i} = {a} * alpha + {b} ** beta / (1 + abs({a}))"
    if kind == 1:
        return f"h{i} = [clamp(v * scale, limits['low'], limits['high']) for v in ({a}, {b}, {i})]"
    if kind == 2:
        return (
            f"def f{i}(x, y={rng.randint(1, 9)}):\n"
            f"    total = 0\n    for k in range(count):\n        total += (x + k) % (y + 1)\n"
            f"    return total\n\nh{i} = f{i}(int(abs({a})) % 97)"
        )
    if kind == 3:
        return (
            f"if mode == 'fast':\n    h{i} = math.sqrt(abs({a}))\nelse:\n"
            f"    h{i} = statistics.fmean([abs({a}), abs({b}), {i}])"
        )
    if kind == 4:
        return f"h{i} = sum(TABLE.get(k, 0) for k in range(count)) + len(label) + {a}"
    return (
        f"counter{i} = Counter(WORDS.findall(label * {rng.randint(1, 4)}))\n"
        f"h{i} = len(counter{i}) + sum(flags) + {b}"
    )


def _skip(rng: random.Random, names: list[str]) -> str:
    a = rng.choice(names)
    return rng.choice(
        [
            f"{a}",
            f"print({a})",
            f"%time _ = [{a} for _ in range(10)]",
            "!ls -la",
            f"json.dumps({{'value': {a}}})",
            f"sorted(TABLE.items())[:{rng.randint(2, 9)}]",
        ]
    )


def build(cells: int = 500, seed: int = 6) -> nbformat.NotebookNode:
    """A notebook of exactly ``cells`` cells with one parameters and one response cell."""
    rng = random.Random(seed)
    out = [new_markdown_cell("# A long notebook\n\nGenerated for promoter's benchmarks.")]
    out += [new_code_cell(src, metadata={"tags": ["setup"]}) for src in SETUP]
    out.append(new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}))
    names = ["alpha", "beta", "scale", "count"]
    tail = 3  # the response cell and two scratch cells after it
    i = 0
    while len(out) < cells - tail:
        roll = rng.random()
        if roll < 0.45:
            out.append(new_code_cell(_handler(rng, i, names)))
            if f"h{i} = [" not in out[-1].source:  # list values do not feed arithmetic
                names.append(f"h{i}")
            i += 1
        elif roll < 0.75:
            title = f"## Step {i}" if rng.random() < 0.3 else f"Notes on step {i}: *why* it is so."
            out.append(new_markdown_cell(title))
        else:
            out.append(new_code_cell(_skip(rng, names), metadata={"tags": ["skip"]}))
    last = names[-5:]
    response = "{\n" + "".join(f"    {n!r}: {n},\n" for n in last) + "    'label': label,\n}"
    out.append(new_code_cell(response, metadata={"tags": ["response"]}))
    out.append(new_code_cell(f"{names[-1]} * 2"))
    out.append(new_markdown_cell("Scratch, never promoted."))
    for index, cell in enumerate(out):
        cell.id = f"cell-{index:04d}"
    notebook = new_notebook(
        cells=out,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.validate(notebook)
    return notebook


def write(path: Path, cells: int = 500) -> Path:
    nbformat.write(build(cells), path)
    return path
