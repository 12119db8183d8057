"""Concurrency: 5,000 requests at 32 connections, each answer equal to the answer alone.

The expected answer of each of 200 seeded random parameter sets is fetched first, one request
at a time; then 5,000 requests drawn from that pool run 32 at a time. A leak between requests
(a shared variable, a mutated default) shows as an answer that differs from the lone one. The
server's resident memory after the run must stay within 20 % of its memory after warm-up.
How long that takes is ``make bench``'s business, never an assertion here.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

REQUESTS = 5_000
CONCURRENCY = 32
DISTINCT = 200
WORDS = ["fox", "Dog", "the", "a", "and", "quick", "naïve", "café", "東京", "x", "jumps", "over"]


def _parameters(rng: random.Random) -> dict[str, Any]:
    words = [rng.choice(WORDS) for _ in range(rng.randint(0, 40))]
    text = " ".join(w + rng.choice(["", "", ".", "!", ","]) for w in words)
    return {
        "text": text,
        "stopwords": rng.sample(WORDS, rng.randint(0, 4)),
        "top_n": rng.randint(1, 8),
        "lowercase": rng.random() < 0.5,
    }


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _fire(url: str, bodies: list[dict[str, Any]], picks: list[int]) -> list[Any]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    answers: list[Any] = [None] * len(picks)
    queue = iter(enumerate(picks))

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for slot, index in queue:
                response = await client.post("/text_statistics", json=bodies[index])
                assert response.status_code == 200, response.text
                answers[slot] = response.json()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return answers


def test_concurrent_answers_equal_lone_answers(converted: dict[str, Path], serve_folder) -> None:
    server = serve_folder(converted["text_statistics"])
    rng = random.Random(20261125)
    bodies = [_parameters(rng) for _ in range(DISTINCT)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        expected = []
        for body in bodies:
            response = client.post("/text_statistics", json=body)
            assert response.status_code == 200, response.text
            expected.append(response.json())
    assert len({json.dumps(e, sort_keys=True) for e in expected}) > DISTINCT // 2

    asyncio.run(_fire(server.url, bodies, [rng.randrange(DISTINCT) for _ in range(1_000)]))
    warm = _rss_kib(server.process.pid)
    picks = [rng.randrange(DISTINCT) for _ in range(REQUESTS)]
    answers = asyncio.run(_fire(server.url, bodies, picks))
    after = _rss_kib(server.process.pid)

    wrong = [
        i for i, (pick, got) in enumerate(zip(picks, answers, strict=True)) if got != expected[pick]
    ]
    assert not wrong, f"{len(wrong)} answers differ from the lone answer, first at {wrong[0]}"
    assert after <= warm * 1.2, f"RSS grew from {warm} KiB to {after} KiB"
