"""The service's own environment: a fresh virtual environment from its pins alone.

Verification in promoter's own environment proves nothing about the image: a library the
notebook found installed here (a lazily loaded backend, a class a pickle names) may be missing
there. So the service is verified with the interpreter of a virtual environment built by ``uv``
from the ``dependencies`` of the generated ``pyproject.toml`` and nothing else::

    pins -> uv pip compile --generate-hashes -> requirements.lock -> uv venv + uv pip sync

The lock file (exact versions, with hashes) ships with the service and its Dockerfile installs
from it, so the image holds what was verified. Environments are cached by their pins (and the
interpreter) under ``PROMOTER_CACHE_DIR`` (default ``~/.cache/promoter``); uv's own cache
(``UV_CACHE_DIR``) makes a new combination of known packages cost seconds. Two promoter
processes that need the same environment take turns (a file lock), the second one reusing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from promoter._exceptions import VerificationError

__all__ = ["LOCK_FILE", "ServiceEnvironment", "cache_dir", "service_environment"]

#: The lock file of exact versions the service ships (its Dockerfile installs from it).
LOCK_FILE = "requirements.lock"
_READY = "ready"
_SKIP_HINT = (
    "pass --no-isolated-env to verify in promoter's own environment instead (the service's "
    "dependencies are then not proven, and no requirements.lock is written)"
)


@dataclass(frozen=True)
class ServiceEnvironment:
    """A virtual environment with exactly the service's pinned dependencies.

    Attributes:
        python: Its interpreter.
        lock: The text of ``requirements.lock``: what it holds, with hashes.
        seconds: Time taken to find or build it.
        reused: Whether it came from the cache.
    """

    python: Path
    lock: str
    seconds: float
    reused: bool


def cache_dir() -> Path:
    """Where promoter keeps built environments (``PROMOTER_CACHE_DIR``, else the user's cache)."""
    configured = os.environ.get("PROMOTER_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "promoter"


def service_environment(folder: Path, *, timeout: float = 900) -> ServiceEnvironment:
    """The environment of the service in ``folder``, built from its ``pyproject.toml`` pins.

    Args:
        folder: The (staged) service folder.
        timeout: Seconds each ``uv`` step may take.

    Raises:
        VerificationError: The environment cannot be built (no network and a cold cache, a
            pin that does not resolve or install); says how to skip the proof.
    """
    begin = time.perf_counter()
    pins = _pins(folder / "pyproject.toml")
    key = _key(pins)
    home = cache_dir() / "envs" / key
    home.parent.mkdir(parents=True, exist_ok=True)
    with _turn(home.parent / f"{key}.lock"):
        reused = (home / _READY).is_file()
        if not reused:
            _build(home, pins, timeout)
    return ServiceEnvironment(
        python=home / "venv" / "bin" / "python",
        lock=(home / LOCK_FILE).read_text(encoding="utf-8"),
        seconds=time.perf_counter() - begin,
        reused=reused,
    )


def _pins(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as file:
        project = tomllib.load(file).get("project", {})
    return [str(pin) for pin in project.get("dependencies", [])]


def _key(pins: list[str]) -> str:
    """The cache key: the pins, and the interpreter the environment is made from."""
    identity = {
        "pins": sorted(pins, key=str.lower),
        "python": os.path.realpath(sys.executable),
        "version": list(sys.version_info[:3]),
        "layout": 2,  # bump when what is cached changes shape
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return digest[:20]


@contextmanager
def _turn(path: Path) -> Iterator[None]:
    """Hold the file lock at ``path`` (one builder per environment, across processes)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(home: Path, pins: list[str], timeout: float) -> None:
    """Resolve the pins into a lock with hashes, and install exactly that into a new venv."""
    shutil.rmtree(home, ignore_errors=True)  # a build cut off half-way
    home.mkdir(parents=True)
    (home / "requirements.in").write_text("\n".join(pins) + "\n", encoding="utf-8")
    python = os.path.realpath(sys.executable)
    _uv(
        home,
        "resolve the service's dependencies",
        ["pip", "compile", "requirements.in", "--generate-hashes", "--no-header"],
        ["--python", python, "--output-file", "resolved.txt", "--quiet"],
        timeout=timeout,
    )
    resolved = (home / "resolved.txt").read_text(encoding="utf-8")
    (home / LOCK_FILE).write_text(_LOCK_HEADER + resolved, encoding="utf-8")
    _uv(home, "create the service's environment", ["venv", "venv", "--python", python, "-q"])
    _uv(
        home,
        "install the service's dependencies",
        ["pip", "sync", LOCK_FILE, "--python", "venv/bin/python", "--compile-bytecode", "-q"],
        timeout=timeout,
    )
    (home / _READY).write_text("", encoding="utf-8")


_LOCK_HEADER = (
    "# The exact versions the service was verified with (promoter built a fresh environment\n"
    "# from pyproject.toml's pins alone and proved the service in it). The Dockerfile installs\n"
    "# these: pip install --require-hashes -r requirements.lock\n"
)


def _uv(home: Path, doing: str, *parts: list[str], timeout: float = 120) -> None:
    from uv import find_uv_bin

    command = [find_uv_bin(), *(word for part in parts for word in part)]
    environment = {**os.environ, "VIRTUAL_ENV": "", "UV_NO_PROGRESS": "1"}
    environment.pop("VIRTUAL_ENV")
    try:
        done = subprocess.run(
            command,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _failed(doing, f"uv took more than {timeout:g} s") from None
    if done.returncode != 0:
        raise _failed(doing, _last_lines(done.stderr or done.stdout))


def _failed(doing: str, why: str) -> VerificationError:
    return VerificationError(
        "cannot prove the service as deployed: promoter could not "
        f"{doing} in a fresh environment from its pyproject.toml pins ({why})",
        hint="check that the package index is reachable (uv reads UV_INDEX_URL, and "
        "UV_OFFLINE=1 with a warm cache), and that every pin installs on this platform; or "
        + _SKIP_HINT,
    )


def _last_lines(text: str, count: int = 4) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[-count:])[:600] or "no output"
