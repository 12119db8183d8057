"""`make demo`: convert an example notebook, serve it, call it once, print the answer, stop."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx


def main() -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notebook", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    print(f"$ promoter convert {args.notebook} -o {args.out} --force", flush=True)
    convert = [sys.executable, "-m", "promoter", "convert", str(args.notebook), "-o", str(args.out)]
    if subprocess.run([*convert, "--force"]).returncode != 0:
        return 1
    golden = next((args.out / "tests" / "golden").glob("*.json"))
    request = json.loads(golden.read_text())["request"]
    route = "/" + golden.stem
    base = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--port",
            str(args.port),
            "--log-level",
            "warning",
        ],
        cwd=args.out,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(base, server)
        print(f"$ {curl_command(base + route, request)}", flush=True)
        response = httpx.post(base + route, json=request, timeout=30)
        print(json.dumps(response.json(), indent=2))
        return 0 if response.status_code == 200 else 1
    finally:
        server.terminate()
        server.wait(timeout=10)


def curl_command(url: str, request: object) -> str:
    """The ``curl`` line a reader can paste: a JSON body needs its Content-Type (else 422)."""
    body = shlex.quote(json.dumps(request))
    return f"curl -X POST {url} -H 'Content-Type: application/json' -d {body}"


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the service exited during start-up")
        try:
            if httpx.get(base + "/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not become ready within 120 s")


if __name__ == "__main__":
    sys.exit(main())
