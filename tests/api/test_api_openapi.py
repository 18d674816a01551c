"""The OpenAPI document validates, and Schemathesis fuzzes the live API against it: no
500 for any input, and every response matches what the document says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mailer.config import Settings
from tests.support.api_env import auth, make_key
from tests.support.tracking_env import tracking_app
from tracking.api.openapi import document
from tracking.server import BackgroundServer

pytestmark = pytest.mark.slow
#: Generated requests per operation (a bounded run: about 25 operations).
EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_document_is_valid_openapi_3_1():
    spec = document()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_document_is_served_without_a_key(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json() == document()


@pytest.fixture
def live_api(db_url: str, settings: Settings, sql) -> Iterator[tuple[str, str]]:
    """The API on werkzeug's threaded server, an admin key, a template and an account."""
    sql.execute("INSERT INTO templates (name, subject, text_body) VALUES ('t', 's', 'x')")
    sql.execute("INSERT INTO sender_accounts (email) VALUES ('a@shop.example')")
    key = make_key(sql, "admin")
    roomy = settings.with_overrides(api_rate_limit_per_minute=1_000_000)
    with tracking_app(db_url, roomy, WEB_ROUTES="api") as app, BackgroundServer(app) as server:
        yield server.url, key


def test_fuzzed_requests_never_500_and_match_the_schema(live_api):
    base, key = live_api
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    failures = []
    for operation in operations:
        try:
            _fuzz(operation.as_strategy(), base, key)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def _fuzz(strategy, base: str, key: str) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        case.call_and_validate(base_url=f"{base}/api/v1", headers=auth(key), checks=CHECKS)

    run()
