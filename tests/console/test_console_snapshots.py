"""The console's snapshots (migration 0019, :mod:`mailer.console_snapshots`): counts right
after a recount, a stale costly snapshot shown with its age while a background thread
recounts it, one recount at a time, and queued/pending rows always counted exactly."""

from __future__ import annotations

import time

import psycopg
from flask.testing import FlaskClient

from mailer.console_snapshots import refresh
from tests.console.test_console_pages import queue

LONG_AGO = "2026-01-01 00:00:00+00"


def saved(sql: psycopg.Connection, name: str) -> dict:
    return sql.execute("SELECT * FROM console_snapshots WHERE name = %s", (name,)).fetchone()


def make_costly(sql: psycopg.Connection, name: str, refreshed_at: str = LONG_AGO) -> None:
    """As if counting ``name`` took a second (a large queue), last done at ``refreshed_at``."""
    sql.execute(
        "UPDATE console_snapshots SET refresh_ms = 1000, refreshed_at = %s WHERE name = %s",
        (refreshed_at, name),
    )


def test_a_recount_saves_every_state_and_sees_new_rows(sql: psycopg.Connection):
    for status in ("sent", "sent", "failed", "queued"):
        queue(sql, status=status)
    assert refresh(sql, "queue_counts")
    assert saved(sql, "queue_counts")["figures"] == {"sent": 2, "failed": 1, "queued": 1}
    queue(sql, status="cancelled")
    assert refresh(sql, "queue_counts")
    assert saved(sql, "queue_counts")["figures"]["cancelled"] == 1
    assert not refresh(sql, "queue_counts", max_age=60)  # fresh: left as it is


def test_a_stale_snapshot_is_shown_with_its_age_and_recounted_in_the_background(
    client: FlaskClient, sql: psycopg.Connection
):
    queue(sql, status="sent")
    queue(sql)
    assert refresh(sql, "queue_counts")
    make_costly(sql, "queue_counts")
    queue(sql, status="sent")
    queue(sql)
    live = client.get("/admin/overview.json").get_json()
    assert (live["sent"], live["queued"]) == (1, 2)  # sent as saved, queued exact
    assert live["counted_at"] == "2026-01-01 00:00:00 UTC"
    deadline = time.monotonic() + 10
    while saved(sql, "queue_counts")["figures"].get("sent") != 2:
        assert time.monotonic() < deadline, "the background recount never came"
        time.sleep(0.05)
    assert client.get("/admin/overview.json").get_json()["sent"] == 2
    assert "2026-01-01" not in client.get("/admin/").get_data(as_text=True)


def test_a_fresh_costly_snapshot_is_shown_as_saved(client: FlaskClient, sql: psycopg.Connection):
    queue(sql, status="sent")
    assert refresh(sql, "queue_counts")
    make_costly(sql, "queue_counts", refreshed_at="now")
    queue(sql, status="sent")
    page = client.get("/admin/").get_data(as_text=True)
    assert '<dd data-live="sent">1</dd>' in page and 'id="counted-at"' in page
    assert saved(sql, "queue_counts")["refresh_ms"] == 1000  # not recounted


def test_one_recount_at_a_time(sql: psycopg.Connection, db_url: str):
    queue(sql, status="sent")
    with psycopg.connect(db_url) as other:  # a transaction holding the recount's lock
        other.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('mailer console snapshot ' || %s, 0))",
            ("queue_counts",),
        )
        assert not refresh(sql, "queue_counts")
        assert saved(sql, "queue_counts") is None
    assert refresh(sql, "queue_counts")
    assert saved(sql, "queue_counts")["figures"] == {"sent": 1}


def test_campaigns_show_saved_finished_rows_and_live_pending_rows(
    client: FlaskClient, sql: psycopg.Connection
):
    for status in ("sent", "sent", "queued"):
        queue(sql, campaign="spring", status=status)
    assert refresh(sql, "campaigns")
    make_costly(sql, "campaigns", refreshed_at="now")
    queue(sql, campaign="spring")
    queue(sql, campaign="spring", status="sent")
    page = client.get("/admin/campaigns").get_data(as_text=True)
    # total, sent, failed, suppressed, cancelled, pending: sent as saved, pending now
    assert "<td>4</td><td>2</td><td>0</td><td>0</td><td>0</td><td>2</td>" in page
    assert 'id="counted-at"' in page
