"""What validating answers against the generated response models would cost per request.

For every golden answer of the given generated services (the notebook's answers to its defaults
and examples), times ``ResponseModel.model_validate(answer)`` and, for scale, ``json.dumps`` of
the same answer, with ``timeit`` (best of 5); then the same for synthetic record lists of 1,000
and 100,000 rows. Usage::

    python scripts/measure_response_validation.py SERVICE_FOLDER...
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _best(action: Callable[[], Any], number: int) -> float:
    """Microseconds per call, best of 5 rounds of ``number`` calls."""
    return min(timeit.repeat(action, number=number, repeat=5)) / number * 1e6


def _response_model(folder: Path, stem: str) -> Any:
    models = folder / "app" / stem / "models.py"
    if not models.exists():
        models = folder / "app" / "models.py"
    module = _load(models, f"measured_{folder.name}_{stem}")
    return next(v for k, v in vars(module).items() if k.endswith("Response"))


def main() -> int:
    """Print one line per answer: size, validation and json.dumps cost in microseconds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("services", type=Path, nargs="+")
    args = parser.parse_args()
    rows: list[tuple[str, int, float, float]] = []
    for folder in args.services:
        for golden in sorted((folder / "tests" / "golden").rglob("*.json")):
            stem = golden.stem if golden.parent.name == "golden" else golden.parent.name
            model = _response_model(folder, stem)
            answer = json.loads(golden.read_text(encoding="utf-8"))["response"]
            rows.append(
                (
                    golden.relative_to(folder / "tests" / "golden").as_posix(),
                    len(json.dumps(answer)),
                    _best(lambda m=model, a=answer: m.model_validate(a), 2000),
                    _best(lambda a=answer: json.dumps(a), 2000),
                )
            )
    from pydantic import BaseModel

    class Row(BaseModel):
        sku: str
        quantity: int
        note: str | None = None

    class Rows(BaseModel):
        lines: list[Row]

    for count in (1_000, 100_000):
        lines = [{"sku": f"SKU-{i}", "quantity": i, "note": "x"} for i in range(count)]
        answer = {"lines": lines}
        number = 2 if count > 10_000 else 20
        rows.append(
            (
                f"synthetic {count:,} records",
                len(json.dumps(answer)),
                _best(lambda a=answer: Rows.model_validate(a), number),
                _best(lambda a=answer: json.dumps(a), number),
            )
        )
    print(f"{'answer':40} {'bytes':>9} {'validate us':>12} {'json.dumps us':>14} {'ratio':>6}")
    for name, size, validate, dumps in rows:
        print(f"{name:40} {size:>9} {validate:>12.1f} {dumps:>14.1f} {validate / dumps:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
