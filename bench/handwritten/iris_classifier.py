"""Iris species classifier, written by hand as a FastAPI endpoint (the benchmark baseline).

The same logic as examples/notebooks/iris_classifier.ipynb, the way a careful engineer would
serve it: the model is trained once at start-up, the request is a pydantic model and the
response type is declared so FastAPI serialises it in pydantic's Rust core.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    iris = load_iris(as_frame=True)
    x_train, _, y_train, _ = train_test_split(
        iris.data, iris.target, test_size=0.25, random_state=0, stratify=iris.target
    )
    state["features"] = list(iris.feature_names)
    state["species"] = [str(name) for name in iris.target_names]
    state["model"] = LogisticRegression(max_iter=500, random_state=0).fit(x_train, y_train)
    yield


app = FastAPI(lifespan=lifespan)


class Flower(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sepal_length: float = 5.1
    sepal_width: float = 3.5
    petal_length: float = 1.4
    petal_width: float = 0.2


class Prediction(BaseModel):
    species: str
    probabilities: dict[str, float]
    confidence: float


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/iris_classifier")
def predict(flower: Flower) -> Prediction:
    row = pd.DataFrame(
        [[flower.sepal_length, flower.sepal_width, flower.petal_length, flower.petal_width]],
        columns=state["features"],
    )
    proba = state["model"].predict_proba(row)[0]
    best = int(np.argmax(proba))
    species = state["species"]
    return Prediction(
        species=species[best],
        probabilities={name: round(float(p), 4) for name, p in zip(species, proba, strict=True)},
        confidence=round(float(proba[best]), 4),
    )
