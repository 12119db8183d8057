"""Benchmark: ``promoter check -j N`` against ``pytest --nbmake -n N`` on the same notebooks.

Both tools get identical copies of ``examples/notebooks`` and the same parallelism. nbmake only
executes each notebook; ``promoter check`` also lints the tags, infers both models, renders the
service and runs its pipeline in a fresh Python to prove fidelity, and looks for stale
services. The runs alternate (promoter, nbmake, promoter, ...) so background load hits both
alike; the ratio of the medians is the result.

    python bench/check_vs_nbmake.py              # -j 2, 5 rounds, writes bench/results/
    python bench/check_vs_nbmake.py --smoke      # one notebook, one round, -j 1 (for tests)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "notebooks"
RESULTS = ROOT / "bench" / "results" / "check_vs_nbmake.json"
SMOKE_NOTEBOOK = "loan_calculator.ipynb"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallelism (default 2)")
    parser.add_argument("--rounds", type=int, default=None, help="timed runs of each tool")
    parser.add_argument("--smoke", action="store_true", help="one notebook, one round, -j 1")
    parser.add_argument("--out", type=Path, default=None, help="results file")
    args = parser.parse_args(argv)
    jobs = args.jobs or (1 if args.smoke else 2)
    rounds = args.rounds or (1 if args.smoke else 5)
    out = args.out or (None if args.smoke else RESULTS)
    names = [SMOKE_NOTEBOOK] if args.smoke else sorted(p.name for p in EXAMPLES.glob("*.ipynb"))

    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        work = Path(tmp)
        for tool in ("promoter", "nbmake"):
            (work / tool).mkdir()
            for name in names:
                shutil.copy(EXAMPLES / name, work / tool / name)
        timings: dict[str, list[float]] = {"promoter": [], "nbmake": []}
        if not args.smoke:  # one untimed run each: file caches, compiled bytecode
            _promoter(work, jobs)
            _nbmake(work, jobs)
        for _ in range(rounds):
            timings["promoter"].append(_promoter(work, jobs))
            timings["nbmake"].append(_nbmake(work, jobs))

    promoter_median = statistics.median(timings["promoter"])
    nbmake_median = statistics.median(timings["nbmake"])
    result = {
        "benchmark": "promoter check vs pytest --nbmake",
        "notebooks": names,
        "jobs": jobs,
        "rounds": rounds,
        "promoter_check_seconds": [round(t, 3) for t in timings["promoter"]],
        "nbmake_seconds": [round(t, 3) for t in timings["nbmake"]],
        "promoter_check_median": round(promoter_median, 3),
        "nbmake_median": round(nbmake_median, 3),
        "ratio": round(promoter_median / nbmake_median, 3),
        # Each round's pair ran back to back, so its ratio is less sensitive to load drift.
        "round_ratios": [
            round(p / n, 3) for p, n in zip(timings["promoter"], timings["nbmake"], strict=True)
        ],
        "commands": {
            "promoter": f"promoter check DIR -j {jobs}",
            "nbmake": f"pytest --nbmake -n {jobs} DIR",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
        "versions": {name: _version(name) for name in ("promoter", "nbmake", "papermill")},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(result, indent=2) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    print(text, end="")
    print(
        f"promoter check {promoter_median:.1f} s, pytest --nbmake {nbmake_median:.1f} s "
        f"(-j {jobs}, {len(names)} notebooks): ratio {result['ratio']:.2f}",
        file=sys.stderr,
    )
    return 0


def _promoter(work: Path, jobs: int) -> float:
    command = [sys.executable, "-m", "promoter", "check", "promoter", "-j", str(jobs), "--json"]
    return _timed(command, work)


def _nbmake(work: Path, jobs: int) -> float:
    # No project config (rootdir is the scratch folder), so both tools run with defaults.
    command = [
        sys.executable, "-m", "pytest", "--nbmake", "-n", str(jobs), "-q",
        "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", str(work), "nbmake",
    ]  # fmt: skip
    return _timed(command, work)


def _timed(command: list[str], cwd: Path) -> float:
    begin = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - begin
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"{' '.join(command[2:5])} failed (exit {proc.returncode}):\n{tail}")
    return seconds


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
