"""The reputation guard: a worker pauses its own account when bounces or complaints run
high; `mailer status` shows why; resuming starts the record afresh."""

from __future__ import annotations

import re

from mailer.reputation import Thresholds, enforce
from mailer.status import collect_status, format_status
from tests.support.mailer_env import add_account, insert_emails, running_worker, wait_until
from tests.support.smtp_server import ScriptedSMTPServer


def history(sql, account_id, *, sends, hard_bounces=0, complaints=0, soft_bounces=0):
    """Past sends of ``account_id`` and what came back for them."""
    [queue_id] = [
        r["id"]
        for r in sql.execute(
            "INSERT INTO email_queue (to_address, subject, html_body, status) "
            "VALUES ('old@example.org', 's', 'b', 'sent') RETURNING id"
        ).fetchall()
    ]
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted, code) "
        "SELECT %s, %s, 'sent', true, 250 FROM generate_series(1, %s)",
        (queue_id, account_id, sends),
    )
    for kind, count, event_type in (
        ("hard_bounce", hard_bounces, "bounce"),
        ("soft_bounce", soft_bounces, "bounce"),
        ("complaint", complaints, "complaint"),
    ):
        sql.execute(
            "INSERT INTO email_events (queue_id, account_id, type, data) "
            "SELECT %s, %s, %s, jsonb_build_object('kind', %s::text) "
            "FROM generate_series(1, %s)",
            (queue_id, account_id, event_type, kind, count),
        )


def account_state(sql, account_id):
    return sql.execute(
        "SELECT status, last_error FROM sender_accounts WHERE id = %s", (account_id,)
    ).fetchone()


async def test_worker_pauses_its_account_on_complaints(sql, db_url, settings, db):
    with ScriptedSMTPServer() as smtp:
        sender = add_account(sql, smtp)
        history(sql, sender, sends=1000, complaints=4, soft_bounces=100)
        insert_emails(sql, 3)
        async with running_worker(settings, db_url, sender) as worker:
            await wait_until(
                lambda: account_state(sql, sender)["status"] == "paused", message="account paused"
            )
            await wait_until(lambda: worker.stopping, message="worker stopping")
    state = account_state(sql, sender)
    # The worker may send the three queued rows before its first check.
    assert re.fullmatch(
        r"paused by the reputation guard: complaint rate 0\.40% "
        r"\(4 of 100[0-3] recent sends\) is over 0\.30%",
        state["last_error"],
    )
    [event] = sql.execute("SELECT account_id, type, data FROM account_events").fetchall()
    assert (event["account_id"], event["type"], event["data"]["complaints"]) == (
        sender,
        "reputation_pause",
        4,
    )
    report = await collect_status(db)
    [shown] = [a for a in report["accounts"] if a["id"] == sender]
    assert shown["status"] == "paused"
    assert "complaint rate 0.40%" in format_status(report)


async def test_healthy_and_small_accounts_are_left_alone(sql, db):
    healthy = sql.execute(
        "INSERT INTO sender_accounts (email) VALUES ('a@shop.example') RETURNING id"
    ).fetchone()["id"]
    small = sql.execute(
        "INSERT INTO sender_accounts (email) VALUES ('b@shop.example') RETURNING id"
    ).fetchone()["id"]
    history(sql, healthy, sends=1000, hard_bounces=50, complaints=3)
    history(sql, small, sends=100, hard_bounces=100)
    thresholds = Thresholds()
    assert await enforce(db, healthy, thresholds) is None
    assert await enforce(db, small, thresholds) is None
    assert await enforce(db, 999, thresholds) is None
    assert account_state(sql, healthy)["status"] == "active"
    assert account_state(sql, small)["status"] == "active"


async def test_resuming_starts_the_record_afresh(sql, db):
    sender = sql.execute(
        "INSERT INTO sender_accounts (email) VALUES ('a@shop.example') RETURNING id"
    ).fetchone()["id"]
    history(sql, sender, sends=400, hard_bounces=40)
    reason = await enforce(db, sender, Thresholds())
    assert reason is not None and "hard-bounce rate 10.00%" in reason
    assert await enforce(db, sender, Thresholds()) is None  # already paused: once only
    sql.execute("UPDATE sender_accounts SET status = 'active' WHERE id = %s", (sender,))
    assert await enforce(db, sender, Thresholds()) is None
    # resuming clears the reason (migration 0022); account_events keeps the pause
    assert account_state(sql, sender) == {"status": "active", "last_error": None}
    assert sql.execute("SELECT count(*) AS n FROM account_events").fetchone()["n"] == 1
