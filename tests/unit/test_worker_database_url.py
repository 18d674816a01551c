"""MAILER_WORKER_DATABASE_URL and MAILER_WORKER_PREPARED_STATEMENTS: which URL a worker's
queries use and whether psycopg prepares statements on it."""

from __future__ import annotations

import pytest

from mailer.config import load_settings
from mailer.db import PREPARE_THRESHOLD, worker_query_connection

DIRECT = "postgresql://mailer@db:5432/mailer"
BOUNCER = "postgresql://mailer@127.0.0.1:6432/mailer"


def chosen(**env: str) -> tuple[str, int | None]:
    return worker_query_connection(load_settings({"MAILER_HOME": "/m", **env}), DIRECT)


def test_workers_under_mailer_run_query_through_the_worker_url_without_prepared_statements():
    under_run = {"MAILER_LOCK_HELD_BY_PARENT": "1"}
    assert chosen(**under_run) == (DIRECT, PREPARE_THRESHOLD)
    assert chosen(**under_run, MAILER_WORKER_DATABASE_URL=BOUNCER) == (BOUNCER, None)
    forced = chosen(
        **under_run, MAILER_WORKER_DATABASE_URL=BOUNCER, MAILER_WORKER_PREPARED_STATEMENTS="on"
    )
    assert forced == (BOUNCER, PREPARE_THRESHOLD)  # PgBouncer >= 1.21, max_prepared_statements
    assert chosen(**under_run, MAILER_WORKER_PREPARED_STATEMENTS="off") == (DIRECT, None)


def test_a_standalone_worker_keeps_database_url_for_its_lock_and_its_queries():
    assert chosen(MAILER_WORKER_DATABASE_URL=BOUNCER) == (DIRECT, PREPARE_THRESHOLD)


def test_an_unknown_prepared_statements_choice_is_refused_naming_the_variable():
    with pytest.raises(ValueError, match="MAILER_WORKER_PREPARED_STATEMENTS must be"):
        load_settings({"MAILER_HOME": "/m", "MAILER_WORKER_PREPARED_STATEMENTS": "maybe"})
