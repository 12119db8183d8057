"""A small async load generator, used when wrk is not installed (``python -m bench._pyload``).

``concurrency`` connections each send the POST body in a loop for ``duration`` seconds, like
wrk's connections; it prints the same ``BENCH_JSON`` summary line as bench/post.lua.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx


async def _worker(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    deadline: float,
    latencies: list[float],
    errors: dict[str, int],
) -> None:
    headers = {"Content-Type": "application/json"}
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            errors["errors_timeout"] += 1
            continue
        except httpx.HTTPError:
            errors["errors_read"] += 1
            continue
        latencies.append(time.perf_counter() - start)
        if response.status_code > 399:
            errors["errors_status"] += 1


async def _run(url: str, body: bytes, concurrency: int, duration: float, timeout: float) -> None:
    latencies: list[float] = []
    errors = dict.fromkeys(
        ("errors_status", "errors_connect", "errors_read", "errors_write", "errors_timeout"), 0
    )
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        start = time.perf_counter()
        deadline = start + duration
        workers = [
            _worker(client, url, body, deadline, latencies, errors) for _ in range(concurrency)
        ]
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - start
    latencies.sort()

    def percentile(q: float) -> int:
        if not latencies:
            return 0
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6)

    summary = {
        "requests": len(latencies),
        "duration_us": round(elapsed * 1e6),
        "p50_us": percentile(0.50),
        "p90_us": percentile(0.90),
        "p99_us": percentile(0.99),
        "max_us": percentile(1.0),
        "mean_us": sum(latencies) / len(latencies) * 1e6 if latencies else 0.0,
        **errors,
    }
    print("BENCH_JSON " + json.dumps(summary), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("body_file", type=Path)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    body = args.body_file.read_bytes()
    asyncio.run(_run(args.url, body, args.concurrency, args.duration, args.timeout))


if __name__ == "__main__":
    main()
