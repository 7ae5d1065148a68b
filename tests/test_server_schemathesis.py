"""Schemathesis against our OpenAPI schema: bad input gets a 4xx naming it, never a 500, and
every response matches the schema (including the one error shape).

Every operation gets a bounded number of positive and negative examples (hypothesis, driven
here rather than through ``schemathesis.pytest.from_fixture``, which does not run under
pytest 9). The ingestion routes (/v1/traces, /api/public/*) have their own tests.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from test_server_support import TOKEN, make_state, seed

from traceyard.capture.tracer import Tracer
from traceyard.server.app import create_app

EXAMPLES_PER_MODE = 25
_AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_api_conforms_to_its_schema(tmp_path: Path) -> None:
    tracer = Tracer.create(
        data_dir=tmp_path / "data", start_server=False, auth_token=TOKEN, worker_batch_timeout=0.02
    )
    try:
        state = make_state(tracer)
        seed(state.store, 10)
        app = create_app(state, ui_dir=None)
        schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=_AUTH)
        schema = schema.exclude(path_regex=r"^/(v1/|api/public/)")
        failures: list[str] = []
        tested = []
        for result in schema.get_all_operations():
            operation = result.ok()
            tested.append(operation.label)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation, mode)
                except (Exception, FailureGroup) as exc:  # report every operation's
                    failures.append(f"{operation.label} [{mode.value}]: {exc}")
        assert len(tested) >= 14, tested
        assert not failures, "\n\n".join(failures)
    finally:
        tracer.stop()


#: Operations with rules across fields that a JSON schema cannot say (start before end, a
#: score needs a trace or a session, a delete needs a filter, which event fields go with which
#: entity): a schema-valid request may get a 4xx that names the rule, so "valid data accepted"
#: does not apply to them.
_CROSS_FIELD_RULES = {
    "POST /api/ingest",
    "GET /api/metrics/timeseries",
    "POST /api/scores",
    "POST /api/traces/delete",
}


#: Batch endpoints keep the good events of a partly bad batch (207 listing the bad ones),
#: so a batch with one schema-violating event is rightly not refused whole.
_PARTIAL_BATCHES = {"POST /api/ingest"}


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
    excluded = [positive_data_acceptance] if operation.label in _CROSS_FIELD_RULES else []
    if operation.label in _PARTIAL_BATCHES:
        excluded.append(negative_data_rejection)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def run(case: schemathesis.Case) -> None:
        skip = list(excluded)
        query = case.query or {}
        if query.get("cursor"):
            # Cursors are opaque: only values the server issued are valid (400 otherwise),
            # which a schema cannot say.
            skip.append(positive_data_acceptance)
        if query.get("prompt_version") is not None and not query.get("prompt_name"):
            # A prompt version means nothing without its prompt's name: 422 naming the rule.
            skip.append(positive_data_acceptance)
        case.call_and_validate(headers=_AUTH, excluded_checks=skip)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # No parameters to make invalid (e.g. GET /api/health): nothing to test negatively.
