"""Large answers over HTTP: the service's JSON writer against a hand-written endpoint.

Both endpoints answer the same prebuilt DataFrame (``rows`` rows, see
:func:`bench._large.build_frame`), so only the way it becomes JSON differs:

- ``/handwritten`` is what a developer writes by hand:
  ``Response(df.to_json(orient="records", date_format="iso"), media_type="application/json")``
  (ISO dates, as the service writes them and as pandas 4 will by default; floats to 10 digits);
- ``/dumps`` is the generated service's way: ``Response(dumps(df))`` with the converter of
  ``templates/service/app/jsonable/`` (lossless: index, exact floats, ISO datetimes);
- ``/jsonresponse`` is the service's previous way, ``JSONResponse(to_jsonable(df))``.

Run with ``uvicorn bench.large_app:app`` from the repository root; ``BENCH_LARGE_ROWS`` is a
comma-separated list of the frame sizes to prebuild.
"""

import os

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from bench._large import build_frame, load_jsonable

jsonable = load_jsonable()
ROWS = [int(n) for n in os.environ.get("BENCH_LARGE_ROWS", "10,1000").split(",")]
FRAMES = {rows: build_frame(rows) for rows in ROWS}

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/handwritten")
async def handwritten(rows: int) -> Response:
    text = FRAMES[rows].to_json(orient="records", date_format="iso")
    return Response(text, media_type="application/json")


@app.get("/dumps")
async def dumps(rows: int) -> Response:
    return Response(jsonable.dumps(FRAMES[rows]), media_type="application/json")


@app.get("/jsonresponse")
async def jsonresponse(rows: int) -> JSONResponse:
    return JSONResponse(jsonable.to_jsonable(FRAMES[rows]))
