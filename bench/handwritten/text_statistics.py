"""Text statistics, written by hand as a FastAPI endpoint (the benchmark baseline).

The same logic as examples/notebooks/text_statistics.ipynb: pydantic request and response
models.

The work takes microseconds and never waits, so the endpoint is ``async def``: FastAPI then
calls it on the event loop instead of handing it to a worker thread (its advice for such code).
"""

import re
from collections import Counter

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

WORD_RE = re.compile(r"[A-Za-z\u00C0-\u024F']+")
SENTENCE_SPLIT_RE = re.compile(r"[.!?]+(?=\s|$)")

app = FastAPI()


class TextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = (
        "The quick brown fox jumps over the lazy dog. The dog sleeps, and the fox runs away! "
        "Is the fox quick enough?"
    )
    stopwords: list[str] = ["the", "a", "and"]
    top_n: int = 5
    lowercase: bool = True


class WordCount(BaseModel):
    word: str
    count: int


class TextStatistics(BaseModel):
    word_count: int
    unique_words: int
    top_words: list[WordCount]
    average_word_length: float
    sentences: int


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/text_statistics")
async def text_statistics(req: TextRequest) -> TextStatistics:
    words = WORD_RE.findall(req.text)
    if req.lowercase:
        words = [w.lower() for w in words]
    stop = {s.lower() if req.lowercase else s for s in req.stopwords}
    counts = Counter(w for w in words if w not in stop)
    average = round(sum(len(w) for w in words) / len(words), 3) if words else 0.0
    return TextStatistics(
        word_count=len(words),
        unique_words=len(set(words)),
        top_words=[WordCount(word=w, count=c) for w, c in counts.most_common(req.top_n)],
        average_word_length=average,
        sentences=sum(1 for s in SENTENCE_SPLIT_RE.split(req.text) if WORD_RE.search(s)),
    )
