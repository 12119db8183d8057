"""Capacity: how many CPUs this process may really use, from its affinity and its cgroup.

``os.cpu_count()`` counts the node's CPUs: a 1-CPU pod on a 32-core node would get 32 slots and
queue them all on one CPU. The pod's CPU limit is its cgroup's quota (cgroup v2 ``cpu.max``,
v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), and ``taskset``/cpusets show in the affinity.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_limit(root: Path = CGROUP_ROOT, own: Path = Path("/proc/self/cgroup")) -> tuple[float, str]:
    """The CPUs this process may use, and where the number comes from (for the start-up log)."""
    affinity = _affinity()
    quota = _cgroup_quota(root, own)
    if quota is not None and quota < affinity:
        return quota, f"the cgroup CPU quota ({quota:g} CPUs)"
    if affinity < (os.cpu_count() or 1):
        return affinity, f"the CPU affinity ({affinity:g} of {os.cpu_count()} CPUs)"
    return affinity, f"the machine's {affinity:g} CPUs (no cgroup quota)"


def default_concurrency() -> int:
    """ThreadPoolExecutor's own default (CPUs + 4, at most 32), with the CPUs really allowed."""
    cpus, _ = cpu_limit()
    return min(32, math.ceil(cpus) + 4)


def _affinity() -> float:
    if hasattr(os, "sched_getaffinity"):
        return float(len(os.sched_getaffinity(0)))
    return float(os.cpu_count() or 1)


def _cgroup_quota(root: Path, own: Path) -> float | None:
    """The smallest CPU quota on the way from this process's cgroup to the root, in CPUs."""
    quotas = [q for folder in _cgroup_folders(root, own) if (q := _quota(folder)) is not None]
    return min(quotas, default=None)


def _cgroup_folders(root: Path, own: Path) -> list[Path]:
    """This process's cgroup folders (v2 unified, else v1 cpu), the innermost first."""
    try:
        lines = own.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    folders = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: "0::/path"
            base = root
        elif "cpu" in controllers.split(","):  # v1: "4:cpu,cpuacct:/path"
            base = next((root / n for n in ("cpu,cpuacct", "cpu") if (root / n).is_dir()), root)
        else:
            continue
        folder = base / path.lstrip("/")
        while True:
            folders.append(folder)
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return folders or [root]


def _quota(folder: Path) -> float | None:
    try:
        fields = (folder / "cpu.max").read_text(encoding="utf-8").split()
        if fields[0] != "max":
            return int(fields[0]) / int(fields[1])
        return None
    except (OSError, IndexError, ValueError):
        pass
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
        period = int((folder / "cpu.cfs_period_us").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
