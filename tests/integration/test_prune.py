"""`mailer db prune`: terminal rows, logs and events past retention go, in bounded batches;
everything still to send (and everything recent) stays, and a prune never waits on a row
another session holds."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import psycopg
import pytest

from mailer.prune import RetentionManager, parse_age
from tests.support.mailer_env import REPO_ROOT, insert_emails


def _age(sql, ids, days):
    sql.execute(
        "UPDATE email_queue SET created_at = now() - make_interval(days => %(d)s), "
        "scheduled_at = now() - make_interval(days => %(d)s) WHERE id = ANY(%(ids)s)",
        {"d": days, "ids": ids},
    )


def _finish(sql, ids, status, days_ago):
    sql.execute(
        "UPDATE email_queue SET status = %(s)s, attempts = 1, sent_at = CASE WHEN %(s)s = 'sent' "
        "THEN now() - make_interval(days => %(d)s) END WHERE id = ANY(%(ids)s)",
        {"s": status, "d": days_ago, "ids": ids},
    )
    sql.execute(
        "INSERT INTO send_logs (queue_id, outcome, counted, created_at) "
        "SELECT id, 'sent', true, now() - make_interval(days => %(d)s) "
        "FROM unnest(%(ids)s::bigint[]) AS id",
        {"d": days_ago, "ids": ids},
    )
    sql.execute(
        "INSERT INTO email_events (queue_id, type, created_at) "
        "SELECT id, 'open', now() - make_interval(days => %(d)s) "
        "FROM unnest(%(ids)s::bigint[]) AS id",
        {"d": days_ago, "ids": ids},
    )


def _ids(sql):
    return {r["id"] for r in sql.execute("SELECT id FROM email_queue").fetchall()}


def test_parse_age():
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("36h") == timedelta(hours=36)
    assert parse_age("2w") == timedelta(weeks=2)
    for bad in ("90", "d", "-1d", "1y", ""):
        with pytest.raises(ValueError):
            parse_age(bad)
    # The rolling daily limit counts the last 24 hours of sends: they are never pruned.
    for young in ("12h", "90m", "23h"):
        with pytest.raises(ValueError, match="under 24 hours"):
            parse_age(young)


async def test_prune_keeps_the_24_hours_the_daily_limit_counts(sql, db):
    [queue_id] = insert_emails(sql, 1)
    sql.execute(
        "UPDATE email_queue SET status = 'sent', created_at = now() - interval '2 hours', "
        "sent_at = now() - interval '2 hours' WHERE id = %s",
        (queue_id,),
    )
    sql.execute(
        "INSERT INTO send_logs (queue_id, outcome, counted, created_at) "
        "VALUES (%s, 'sent', true, now() - interval '2 hours')",
        (queue_id,),
    )
    result = await RetentionManager(db).prune(timedelta(hours=1))
    assert result.deleted == {
        "email_queue": 0,
        "send_logs": 0,
        "email_events": 0,
        "webhook_deliveries": 0,
        "recurring_runs": 0,
    }
    assert sql.execute("SELECT count(*) AS n FROM send_logs").fetchone()["n"] == 1


async def test_prune_deletes_old_terminal_rows_with_logs_and_events(sql, db):
    old_sent = insert_emails(sql, 7)
    old_failed = insert_emails(sql, 2)
    old_cancelled = insert_emails(sql, 1)
    old_queued = insert_emails(sql, 2)  # still to send: never pruned, however old
    old_sending = insert_emails(sql, 1)
    recent_sent = insert_emails(sql, 3)
    _age(sql, old_sent + old_failed + old_cancelled + old_queued + old_sending, 120)
    _finish(sql, old_sent, "sent", 119)
    _finish(sql, old_failed, "failed", 119)
    _finish(sql, old_cancelled, "cancelled", 119)
    _finish(sql, recent_sent, "sent", 1)
    sql.execute(
        "UPDATE email_queue SET status = 'sending', locked_by = 'w' WHERE id = ANY(%s)",
        (old_sending,),
    )
    # an old log of a row kept (retried for months), and an old event without a row
    sql.execute(
        "INSERT INTO send_logs (queue_id, outcome, counted, created_at) "
        "VALUES (%s, 'transient', true, now() - interval '100 days')",
        (old_queued[0],),
    )
    sql.execute(
        "INSERT INTO email_events (queue_id, type, created_at) "
        "VALUES (NULL, 'complaint', now() - interval '100 days')"
    )

    result = await RetentionManager(db, batch_size=3).prune(timedelta(days=90))

    # the 10 rows' logs and events too (no cascade since migration 0020: they are
    # older than the cutoff themselves), and the old log and event without a kept row
    assert result.deleted == {
        "email_queue": 10,
        "send_logs": 11,
        "email_events": 11,
        "webhook_deliveries": 0,
        "recurring_runs": 0,
    }
    assert result.batches >= 10 // 3 + 4  # bounded batches, plus one empty pass per table
    assert _ids(sql) == set(old_queued + old_sending + recent_sent)
    logs = sql.execute(
        "SELECT queue_id, created_at > now() - interval '2 days' AS recent FROM send_logs"
    ).fetchall()
    assert {r["queue_id"] for r in logs} == set(recent_sent)
    events = sql.execute("SELECT queue_id FROM email_events").fetchall()
    assert {r["queue_id"] for r in events} == set(recent_sent)

    again = await RetentionManager(db).prune(timedelta(days=90))
    assert sum(again.deleted.values()) == 0


async def test_prune_skips_rows_locked_by_another_session(sql, db, db_url):
    ids = insert_emails(sql, 4)
    _age(sql, ids, 200)
    _finish(sql, ids, "sent", 200)
    with psycopg.connect(db_url) as other:
        other.execute("SELECT id FROM email_queue WHERE id = %s FOR UPDATE", (ids[0],))
        result = await RetentionManager(db, batch_size=2).prune(timedelta(days=90))
        assert result.deleted["email_queue"] == 3
        other.rollback()
    assert _ids(sql) == {ids[0]}


def test_cli_prune(sql, db_url, tmp_path):
    ids = insert_emails(sql, 3)
    _age(sql, ids[:2], 100)
    _finish(sql, ids[:2], "sent", 100)
    env = {"DATABASE_URL": db_url, "MAILER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "mailer", "db", "prune", "--older-than", "90d"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "2 email_queue" in out.stdout
    assert _ids(sql) == {ids[2]}
    bad = subprocess.run(
        [sys.executable, "-m", "mailer", "db", "prune", "--older-than", "soon"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--older-than" in bad.stderr


async def test_prune_deletes_old_settled_webhook_deliveries_only(sql, db):
    sql.execute(
        "INSERT INTO webhook_endpoints (url, events, secret_encrypted) "
        "VALUES ('https://hooks.example/', '{sent}', 'x')"
    )
    for status, days in (("delivered", 100), ("failed", 100), ("pending", 100), ("delivered", 1)):
        sql.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, event_type, payload, status, created_at) "
            "SELECT id, 'sent', '{}', %s, now() - make_interval(days => %s) "
            "FROM webhook_endpoints",
            (status, days),
        )
    sql.execute(
        "INSERT INTO webhook_attempts (delivery_id, endpoint_id, status_code) "
        "SELECT id, endpoint_id, 200 FROM webhook_deliveries"
    )
    result = await RetentionManager(db).prune(timedelta(days=90))
    assert result.deleted["webhook_deliveries"] == 2
    kept = sql.execute(
        "SELECT d.status, count(a.id) AS attempts FROM webhook_deliveries AS d "
        "LEFT JOIN webhook_attempts AS a ON a.delivery_id = d.id GROUP BY d.id ORDER BY d.id"
    ).fetchall()
    assert [(r["status"], r["attempts"]) for r in kept] == [("pending", 1), ("delivered", 1)]
