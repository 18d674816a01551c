"""Stranded rows: queued rows no worker will take as things stand (pinned to an account
that is not active, or in a pool without an active account) are listed by ``mailer
status`` with their reason, and an account with rows pinned to it cannot be deleted."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
import pytest

from tests.support.mailer_env import insert_emails


def account(sql: psycopg.Connection, email: str, status: str, pool: str = "default", **extra):
    values = {"email": email, "status": status, "pool": pool, "smtp_host": "h"} | extra
    names, marks = ", ".join(values), ", ".join(f"%({k})s" for k in values)
    return sql.execute(
        f"INSERT INTO sender_accounts ({names}) VALUES ({marks}) RETURNING id", values
    ).fetchone()["id"]


def test_status_lists_stranded_rows_with_their_reason(mailer, sql):
    paused = account(sql, "paused@shop.example", "paused", last_error="paused by admin")
    suspended = account(
        sql, "bad@shop.example", "suspended", last_error="suspended: authentication failed"
    )
    active = account(sql, "ok@shop.example", "active")
    disabled = account(sql, "eu@shop.example", "disabled", pool="eu")
    insert_emails(sql, 2, account_id=paused)
    insert_emails(sql, 1, account_id=paused, status="sent")
    insert_emails(sql, 1, account_id=suspended)
    insert_emails(sql, 1, account_id=disabled)
    insert_emails(sql, 1, account_id=active)
    insert_emails(sql, 3)  # the default pool has an active account
    insert_emails(sql, 2, pool="eu")  # only a disabled account
    insert_emails(sql, 1, pool="nowhere")
    insert_emails(sql, 1, pool="nowhere", status="cancelled")

    report = json.loads(mailer("status", "--json"))
    groups = {(g["reason"], g["account_id"], g["pool"]): g for g in report["stranded"]}
    assert {key: g["rows"] for key, g in groups.items()} == {
        ("account_paused", paused, None): 2,
        ("account_suspended", suspended, None): 1,
        ("account_disabled", disabled, None): 1,
        ("pool_has_no_active_account", None, "eu"): 2,
        ("pool_has_no_active_account", None, "nowhere"): 1,
    }
    group = groups["account_suspended", suspended, None]
    assert group["account_email"] == "bad@shop.example"
    assert group["detail"] == (
        f"pinned to account {suspended} <bad@shop.example>, which is suspended "
        "(suspended: authentication failed)"
    )
    assert groups["pool_has_no_active_account", None, "eu"]["detail"] == (
        "pool 'eu' has no active account"
    )
    oldest = datetime.fromisoformat(group["oldest_created_at"])
    assert oldest.tzinfo is not None and "T" in group["oldest_created_at"]
    assert report["queue"]["stranded"] == 7

    text = mailer("status")
    assert "stranded: 7 queued rows no worker will take" in text
    assert f"pinned to account {paused} <paused@shop.example>, which is paused" in text
    assert "pool 'nowhere' has no active account" in text


def test_status_shows_no_stranded_rows_when_every_row_has_a_way_out(mailer, sql):
    account(sql, "ok@shop.example", "active")
    insert_emails(sql, 2)
    report = json.loads(mailer("status", "--json"))
    assert report["stranded"] == [] and report["queue"]["stranded"] == 0
    assert "stranded" not in mailer("status")


def test_an_account_with_pinned_rows_cannot_be_deleted(sql):
    """Deleting it used to set their account_id to NULL: re-routed to the pool, silently."""
    a = account(sql, "a@shop.example", "paused")
    other = account(sql, "b@shop.example", "active")
    pinned = insert_emails(sql, 2, account_id=a)
    with pytest.raises(psycopg.errors.RestrictViolation) as info:
        sql.execute("DELETE FROM sender_accounts WHERE id = %s", [a])
    message = str(info.value)
    assert f"account {a} <a@shop.example> has 2 queued or sending rows pinned to it" in message
    assert info.value.diag.message_hint and "account_id" in info.value.diag.message_hint
    rows = sql.execute(
        "SELECT account_id, status FROM email_queue WHERE id = ANY(%s)", [pinned]
    ).fetchall()
    assert rows == [{"account_id": a, "status": "queued"}] * 2, "rows untouched"

    sql.execute("UPDATE email_queue SET account_id = %s WHERE account_id = %s", [other, a])
    sql.execute("DELETE FROM sender_accounts WHERE id = %s", [a])
    assert sql.execute("SELECT count(*) AS n FROM sender_accounts").fetchone()["n"] == 1


def test_history_does_not_keep_an_account_from_being_deleted(sql):
    a = account(sql, "a@shop.example", "active")
    [sent] = insert_emails(sql, 1, account_id=a, status="sent", sent_by_account_id=a)
    [failed] = insert_emails(sql, 1, account_id=a, status="failed")
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted) "
        "VALUES (%s, %s, 'sent', true)",
        [sent, a],
    )
    sql.execute(
        "INSERT INTO email_events (queue_id, account_id, type) VALUES (%s, %s, 'open')", [sent, a]
    )
    sql.execute(
        "INSERT INTO account_events (account_id, type) VALUES (%s, 'reputation_pause')", [a]
    )
    sql.execute("DELETE FROM sender_accounts WHERE id = %s", [a])
    rows = sql.execute(
        "SELECT id, account_id, sent_by_account_id, status FROM email_queue ORDER BY id"
    ).fetchall()
    assert rows == [
        {"id": sent, "account_id": None, "sent_by_account_id": None, "status": "sent"},
        {"id": failed, "account_id": None, "sent_by_account_id": None, "status": "failed"},
    ]
    assert sql.execute("SELECT account_id FROM send_logs").fetchone() == {"account_id": None}
    assert sql.execute("SELECT account_id FROM email_events").fetchone() == {"account_id": None}
    assert sql.execute("SELECT count(*) AS n FROM account_events").fetchone()["n"] == 0


def test_rows_of_a_paused_or_cancelled_campaign_are_listed_once(mailer, sql):
    """Campaigns (migration 0013): held rows are counted under their campaign only, even
    when they are also pinned to a paused account."""
    paused = account(sql, "paused@shop.example", "paused")
    account(sql, "ok@shop.example", "active")
    insert_emails(sql, 3, campaign="spring")
    insert_emails(sql, 1, campaign="spring", account_id=paused)
    insert_emails(sql, 2, campaign="old")
    insert_emails(sql, 1, campaign="running")
    insert_emails(sql, 1, account_id=paused)
    sql.execute(
        "INSERT INTO campaign_settings (campaign, state) "
        "VALUES ('spring', 'paused'), ('old', 'cancelled'), ('running', 'active')"
    )
    report = json.loads(mailer("status", "--json"))
    groups = {
        (g["reason"], g["campaign"] or g["account_id"]): g["rows"] for g in report["stranded"]
    }
    assert groups == {
        ("campaign_paused", "spring"): 4,
        ("campaign_cancelled", "old"): 2,
        ("account_paused", paused): 1,
    }
    assert report["queue"]["stranded"] == 7
    assert "campaign 'spring' is paused" in mailer("status")
