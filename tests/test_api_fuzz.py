"""schemathesis against every example service's OpenAPI schema: no 5xx, answers as declared."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.helpers import EXAMPLE_NAMES

schemathesis = pytest.importorskip("schemathesis")
negative_data_rejection = schemathesis.checks.negative_data_rejection

pytestmark = [
    pytest.mark.slow,
    # schemathesis imports `requests`, which warns about its own optional dependencies.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

EXAMPLES_PER_OPERATION = 25


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_openapi_schema_holds(name: str, converted: dict[str, Path], serve_folder) -> None:
    server = serve_folder(converted[name])
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.method == "post" for op in operations)
    for operation in operations:
        # GET /health and /ready take no input: there is nothing invalid to send them.
        positive = [schemathesis.GenerationMode.POSITIVE]
        for mode in schemathesis.GenerationMode if operation.method == "post" else positive:
            _fuzz(operation, mode, server.url)
    assert server.process.poll() is None, "the service died under fuzzing"


def _fuzz(operation, mode, url: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        # Default checks: no 5xx, status code, content type, headers and body as declared.
        # Pydantic's lax mode accepts e.g. 0 for a bool by design (DESIGN.md section 1), so
        # "schema-violating request accepted" is not a finding here.
        case.call_and_validate(base_url=url, excluded_checks=[negative_data_rejection])

    check()
