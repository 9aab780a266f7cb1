"""Schemathesis against the live ``/openapi.json`` of a real hub with real edges: generated
requests, valid and invalid, to every operation, as an admin, get no 5xx and no response
that breaks the spec (status codes, content types, bodies).

The operations are walked by hand (``get_all_operations`` + Hypothesis) rather than with
``schemathesis.pytest.from_fixture``, whose lazy loader does not run under pytest 9."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hub_stack import Stack, run_stack
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow
EXAMPLES = 15
"""Generated cases per operation and mode (29 operations, valid and invalid data)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One stack for every generated case."""
    yield from run_stack(tmp_path_factory.mktemp("hubschema"), mosquitto_bin)


def _fuzz(operation: Any, mode: GenerationMode, token: str) -> None:
    """Run ``EXAMPLES`` generated cases of one operation; raise on the first failure."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, timeout=30,
            checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                    response_schema_conformance])

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_api_conforms_to_its_openapi(stack: Stack, mode: GenerationMode) -> None:
    """Every operation: no 5xx, and every answer is one the spec declares, with the
    declared body (all failing operations are reported together)."""
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    failures: dict[str, str] = {}
    count = 0
    for result in schema.get_all_operations():
        operation: Any = result.ok()  # type: ignore[union-attr]  # Err raises: a bad spec
        count += 1
        try:
            _fuzz(operation, mode, stack.tokens["admin"])
        except Unsatisfiable:  # no parameter to make invalid (/health, /metrics)
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # a check failed: keep going, report every operation
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    assert count >= 29
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
