"""send_logs and email_events partitioned by UTC day (migration 0020): inserts never fail,
partitions are created ahead, prune drops whole days, and the migration keeps every row."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from mailer.db import Database
from mailer.migrate import migrate
from mailer.prune import RetentionManager
from mailer.sql_queries import migration_scripts, query
from tests.support.mailer_env import insert_emails


def partitions(sql: psycopg.Connection, parent: str) -> list[str]:
    rows = sql.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
        (parent,),
    ).fetchall()
    return [r["relname"] for r in rows]


def where(sql: psycopg.Connection, table: str) -> dict[str, int]:
    rows = sql.execute(
        f"SELECT tableoid::regclass::text AS part, count(*) AS n FROM {table} GROUP BY 1"
    ).fetchall()
    return {r["part"]: r["n"] for r in rows}


def log_days_ago(sql: psycopg.Connection, queue_id: int, days: int) -> None:
    sql.execute(
        "INSERT INTO send_logs (queue_id, outcome, counted, created_at) "
        "VALUES (%s, 'sent', true, now() - make_interval(days => %s))",
        (queue_id, days),
    )
    sql.execute(
        "INSERT INTO email_events (queue_id, type, created_at) "
        "VALUES (%s, 'open', now() - make_interval(days => %s))",
        (queue_id, days),
    )


def test_the_coming_week_has_its_partitions_and_inserts_land_in_todays(sql):
    for parent in ("send_logs", "email_events"):
        days = [p for p in partitions(sql, parent) if p != f"{parent}_default"]
        assert len(days) >= 8
    [queue_id] = insert_emails(sql, 1)
    sql.execute(
        "INSERT INTO send_logs (queue_id, outcome, counted) VALUES (%s, 'sent', true)", [queue_id]
    )
    today = sql.execute("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') AS d").fetchone()["d"]
    assert where(sql, "send_logs") == {f"send_logs_p{today}": 1}


def test_a_row_without_its_day_goes_to_default_and_moves_when_the_day_is_made(sql):
    [queue_id] = insert_emails(sql, 1)
    log_days_ago(sql, queue_id, -30)  # 30 days ahead: no partition yet
    assert where(sql, "send_logs") == {"send_logs_default": 1}
    created = sql.execute("SELECT ensure_partitions(interval '31 days') AS n").fetchone()["n"]
    assert created > 0
    [(part, n)] = where(sql, "send_logs").items()
    assert part.startswith("send_logs_p") and n == 1
    assert where(sql, "email_events") and "email_events_default" not in where(sql, "email_events")


def test_a_replayed_attempt_is_logged_once(sql):
    [queue_id] = insert_emails(sql, 1)
    insert = (
        "INSERT INTO send_logs (queue_id, outcome, counted, created_at, attempt_id) "
        "VALUES (%s, 'sent', true, '2026-01-02T03:04:05.123456+00', "
        "'6f1c2d1e-0d5c-4a53-9d0f-6d7e1b2c3a4f') "
        "ON CONFLICT (attempt_id, created_at) WHERE attempt_id IS NOT NULL DO NOTHING"
    )
    assert sql.execute(insert, [queue_id]).rowcount == 1
    assert sql.execute(insert, [queue_id]).rowcount == 0


async def test_prune_drops_whole_days_and_deletes_only_the_rest(sql, db):
    kept, old = insert_emails(sql, 2)
    sql.execute(
        "SELECT mailer_create_partition(p, (now() AT TIME ZONE 'UTC')::date - d) "
        "FROM unnest(ARRAY['send_logs', 'email_events']) AS p, generate_series(95, 120) AS d"
    )
    for days in (120, 110, 100):
        log_days_ago(sql, old, days)
    log_days_ago(sql, kept, 100)
    log_days_ago(sql, kept, 1)
    sql.execute(
        "UPDATE email_queue SET status = 'sent', sent_at = now() - interval '100 days', "
        "created_at = now() - interval '120 days' WHERE id = %s",
        [old],
    )
    result = await RetentionManager(db).prune(timedelta(days=90))
    assert result.partitions_dropped == {"send_logs": 26, "email_events": 26}
    deleted = {"send_logs": 4, "email_events": 4, "email_queue": 1, "webhook_deliveries": 0}
    deleted["recurring_runs"] = 0
    assert result.deleted == deleted  # the four old logs and events dropped with their days
    assert sql.execute("SELECT count(*) AS n FROM send_logs").fetchone()["n"] == 1
    yesterday = sql.execute(
        "SELECT 'send_logs_p' || to_char(now() AT TIME ZONE 'UTC' - interval '1 day', "
        "'YYYYMMDD') AS name"
    ).fetchone()["name"]
    days = [p for p in partitions(sql, "send_logs") if p != "send_logs_default"]
    assert len(days) >= 8 and min(days) >= yesterday


@pytest.fixture
async def db_at_0012(server_url):
    """A fresh database at migration 0012 (before partitioning), and its URL."""
    import uuid

    from tests.conftest import database_url

    name = f"mailer_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query("migrations_table"))
        for version, name_, sql in migration_scripts():
            if version <= 12:
                conn.execute(sql)
                conn.execute(query("record_migration"), {"version": version, "name": name_})
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_migration_keeps_every_log_and_event_with_its_id(db_at_0012):
    from psycopg.rows import dict_row

    with psycopg.connect(db_at_0012, autocommit=True, row_factory=dict_row) as sql:
        ids = insert_emails(sql, 3)
        for days, queue_id in zip((400, 3, 0), ids, strict=True):
            log_days_ago(sql, queue_id, days)
        before = sql.execute("SELECT * FROM send_logs ORDER BY id").fetchall()
        events = sql.execute("SELECT * FROM email_events ORDER BY id").fetchall()
        async with Database(db_at_0012) as db:
            assert "0020_hosts_and_partitions" in await migrate(db)
        assert sql.execute("SELECT * FROM send_logs ORDER BY id").fetchall() == before
        assert sql.execute("SELECT * FROM email_events ORDER BY id").fetchall() == events
        assert "send_logs_default" not in where(sql, "send_logs")
        [queue_id] = insert_emails(sql, 1)
        new = sql.execute(
            "INSERT INTO send_logs (queue_id, outcome, counted) VALUES (%s, 'sent', true) "
            "RETURNING id",
            [queue_id],
        ).fetchone()
        assert new["id"] > before[-1]["id"]  # the same sequence goes on
