"""Time the command line: start-up (``promoter --help``) and ``inspect --static`` of 500 cells.

Each command runs as a user runs it, in a fresh process; we keep the median and the best wall
time, and the CPU time (user + system) the process used, which other load on a shared machine
disturbs far less than wall time.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import _bignotebook


def measure_cli(tmp: Path, runs: int, cells: int, log: Callable[[str], None]) -> dict[str, Any]:
    promoter = str(Path(sys.executable).with_name("promoter"))
    big = _bignotebook.write(tmp / f"long_notebook_{cells}.ipynb", cells)
    out = {
        "help": timed([promoter, "--help"], runs),
        "inspect_static": timed([promoter, "inspect", str(big), "--static"], runs),
        "inspect_static_json": timed([promoter, "inspect", str(big), "--static", "--json"], runs),
        "inspect_cells": cells,
    }
    log(
        f"promoter --help {out['help']['median_s']:.3f} s; inspect --static of {cells} cells "
        f"{out['inspect_static']['median_s']:.3f} s"
    )
    return out


def timed(argv: Sequence[str], runs: int) -> dict[str, Any]:
    """Run ``argv`` once to warm the file cache, then ``runs`` times."""
    run_once(argv)
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        wall, cpu = run_once(argv)
        walls.append(wall)
        cpus.append(cpu)
    return {
        "median_s": round(statistics.median(walls), 4),
        "min_s": round(min(walls), 4),
        "cpu_median_s": round(statistics.median(cpus), 4),
        "runs": runs,
    }


def run_once(argv: Sequence[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu
