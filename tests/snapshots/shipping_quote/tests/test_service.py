"""Tests of the generated service, run with real HTTP calls through FastAPI's TestClient.

The golden answers (tests/golden) are what the notebook itself returned when papermill ran it
with its default parameters and with each of its example parameter sets: the service must
return the same, and the declared response model must accept every one of them.
"""

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import models
from app.main import app, service

GOLDEN = Path(__file__).parent / "golden"
SERVICE = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def in_service_folder() -> Iterator[None]:
    # The service opens its data files relative to its own folder, as it does when deployed:
    # run from there wherever pytest was started.
    before = Path.cwd()
    os.chdir(SERVICE)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    keys = service.settings.api_keys  # SERVICE_API_KEYS set here: the tests use the first
    headers = {"X-API-Key": keys[0].get_secret_value()} if keys else {}
    with TestClient(app, headers=headers) as client:
        deadline = time.monotonic() + 300
        while client.get("/ready").status_code != 200:
            assert client.get("/health").status_code == 200, "setup failed"
            assert time.monotonic() < deadline, "setup did not finish"
            time.sleep(0.05)
        yield client


def assert_json_close(actual: Any, expected: Any, path: str = "response") -> None:
    """Equal JSON, with floats compared to 1e-9 relative tolerance."""
    if isinstance(expected, float) and isinstance(actual, int | float):
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), path
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), path
        for key, value in expected.items():
            assert_json_close(actual[key], value, f"{path}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for index, value in enumerate(expected):
            assert_json_close(actual[index], value, f"{path}[{index}]")
    else:
        assert actual == expected, path


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_operations(client: TestClient) -> None:
    version = client.get("/version").json()
    assert version["version"] == "0.1.0"
    assert set(version["notebooks"]) == {"shipping_quote.ipynb"}
    traced = client.get("/health", headers={"X-Request-ID": "test-trace-1"})
    assert traced.headers["x-request-id"] == "test-trace-1"
    assert "http_requests_total" in client.get("/metrics").text


@pytest.mark.parametrize("name", ["shipping_quote.json"])
def test_shipping_quote_response_model_accepts_the_notebooks_answers(name: str) -> None:
    golden = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    models.ShippingQuoteResponse.model_validate(golden["response"])


@pytest.mark.parametrize("name", ["shipping_quote.json"])
def test_shipping_quote_returns_what_the_notebook_returned(client: TestClient, name: str) -> None:
    golden = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    response = client.post("/shipping_quote", json=golden["request"])
    assert response.status_code == 200, response.text
    assert_json_close(response.json(), golden["response"])


def test_shipping_quote_rejects_unknown_fields(client: TestClient) -> None:
    response = client.post("/shipping_quote", json={"no_such_parameter": 1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "no_such_parameter"]


def test_shipping_quote_rejects_a_wrongly_typed_field(client: TestClient) -> None:
    response = client.post("/shipping_quote", json={"weight_kg": {"an": ["object"]}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "weight_kg"]
