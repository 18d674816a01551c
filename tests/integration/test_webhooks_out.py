"""Outbound webhooks end to end: events queued by the database triggers in the transaction
of the change, posted by the real sender to a real local receiver that verifies every
signature with the ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mailer.config import Settings
from mailer.credentials import CredentialBox
from mailer.db import Database
from mailer.webhook_sender import DeliveryPoster, WebhookSender, deliver_batch, http_client
from mailer.webhooks_out import WebhookError, WebhookManager
from tests.support.mailer_env import (
    REPO_ROOT,
    add_account,
    db_now,
    insert_emails,
    running_service,
    running_worker,
    wait_until,
    worker_env,
)
from tests.support.smtp_server import ScriptedSMTPServer
from tests.support.webhook_receiver import WebhookReceiver

BOX = CredentialBox("test-secret-key")


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    """Local receivers allowed, fast polls and retries."""
    return settings.with_overrides(
        webhooks_allow_private=True,
        webhook_poll_seconds=0.1,
        webhook_retry_base_seconds=0.2,
        webhook_retry_max_seconds=0.4,
    )


@pytest.fixture
def slow_poll(hook_settings: Settings) -> Settings:
    """A sender that, without a NOTIFY or a retry due, would sleep 30 s."""
    return hook_settings.with_overrides(webhook_poll_seconds=30.0)


async def subscribe(db: Database, receiver: WebhookReceiver, events: str) -> int:
    created = await WebhookManager(db, BOX).add(receiver.url, events)
    receiver.secret = created.secret
    return created.endpoint.id


@contextlib.asynccontextmanager
async def running_sender(settings: Settings, db_url: str) -> AsyncIterator[WebhookSender]:
    async with running_service(WebhookSender(settings, db_url)) as sender:
        yield sender


async def one_batch(db: Database, settings: Settings, now: Any) -> Any:
    async with http_client(settings) as client:
        return await deliver_batch(db, DeliveryPoster(settings, BOX, client), settings, now)


def deliveries(sql: psycopg.Connection) -> list[dict[str, Any]]:
    return sql.execute("SELECT * FROM webhook_deliveries ORDER BY id").fetchall()


def attempts(sql: psycopg.Connection) -> list[dict[str, Any]]:
    return sql.execute("SELECT * FROM webhook_attempts ORDER BY id").fetchall()


async def test_rows_sent_by_a_real_worker_produce_signed_sent_webhooks(
    sql, db: Database, db_url: str, hook_settings: Settings
) -> None:
    with WebhookReceiver() as receiver, ScriptedSMTPServer() as smtp:
        await subscribe(db, receiver, "sent,failed")
        account = add_account(sql, smtp, email="news@shop.example")
        ids = insert_emails(sql, 3, account_id=account, campaign="winter", metadata={"order": 7})
        async with running_worker(hook_settings, db_url, account):
            await smtp.wait_for_async(3)
        async with running_sender(hook_settings, db_url):
            await wait_until(lambda: len(receiver.received) >= 3, message="3 webhooks")
    assert all(r.verified for r in receiver.received)
    payloads = sorted((r.payload for r in receiver.received), key=lambda p: p["data"]["email_id"])
    assert [p["type"] for p in payloads] == ["email.sent"] * 3
    rows = {r["id"]: r for r in sql.execute("SELECT * FROM email_queue")}
    for queue_id, payload in zip(ids, payloads, strict=True):
        data = payload["data"]
        assert data["email_id"] == queue_id
        assert data["message_id"] == rows[queue_id]["message_id"]
        assert data["to"] == rows[queue_id]["to_address"]
        assert (data["campaign"], data["metadata"]) == ("winter", {"order": 7})
        assert data["account"] == {"id": account, "email": "news@shop.example"}
        assert payload["timestamp"].endswith("Z")
    assert {d["status"] for d in deliveries(sql)} == {"delivered"}
    assert [a["status_code"] for a in attempts(sql)] == [200, 200, 200]


async def test_a_rolled_back_change_produces_no_event(sql, db: Database, db_url: str) -> None:
    with WebhookReceiver() as receiver:
        await subscribe(db, receiver, "sent,opened")
    rolled, kept = insert_emails(sql, 2)
    with psycopg.connect(db_url) as conn:  # not autocommit: one transaction
        conn.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (rolled,))
        conn.execute("INSERT INTO email_events (queue_id, type) VALUES (%s, 'open')", (rolled,))
        assert len(conn.execute("SELECT id FROM webhook_deliveries").fetchall()) == 2
        conn.rollback()
    assert deliveries(sql) == []
    sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (kept,))
    sql.execute("UPDATE email_queue SET priority = 1 WHERE id = %s", (kept,))  # not a change
    sql.execute("INSERT INTO email_events (queue_id, type) VALUES (%s, 'click')", (kept,))
    assert [(d["event_type"], d["payload"]["data"]["email_id"]) for d in deliveries(sql)] == [
        ("sent", kept)
    ]


async def test_each_event_goes_to_the_endpoints_subscribed_to_it(sql, db: Database) -> None:
    with WebhookReceiver() as opens, WebhookReceiver() as bounces:
        opens_id = await subscribe(db, opens, "opened")
        bounces_id = await subscribe(db, bounces, "bounced,complained")
    (queue_id,) = insert_emails(sql, 1)
    for kind in ("open", "bounce", "click", "complaint"):
        sql.execute(
            "INSERT INTO email_events (queue_id, type, data) VALUES (%s, %s, %s)",
            (queue_id, kind, '{"raw": "big report", "code": 550}'),
        )
    got = [(d["endpoint_id"], d["payload"]["type"]) for d in deliveries(sql)]
    assert got == [
        (opens_id, "email.opened"),
        (bounces_id, "email.bounced"),
        (bounces_id, "email.complained"),
    ]
    assert deliveries(sql)[1]["payload"]["data"]["details"] == {"code": 550}


async def test_a_500_is_retried_with_the_same_webhook_id(
    sql, db: Database, db_url: str, slow_poll: Settings
) -> None:
    """The retry goes out when it falls due (0.2 s here), not at the next 30 s poll."""
    with WebhookReceiver() as receiver:
        await subscribe(db, receiver, "sent")
        receiver.script = [500]
        (queue_id,) = insert_emails(sql, 1)
        sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (queue_id,))
        async with running_sender(slow_poll, db_url):
            await wait_until(lambda: len(receiver.received) >= 2, message="a retry")
    first, second = receiver.received[:2]
    assert first.verified and second.verified
    assert first.webhook_id == second.webhook_id == deliveries(sql)[0]["webhook_id"]
    logged = attempts(sql)
    assert [a["status_code"] for a in logged] == [500, 200]
    assert logged[0]["error"] == "HTTP 500" and logged[0]["response_excerpt"] == '{"status": 500}'
    assert all(a["latency_ms"] is not None for a in logged)
    assert deliveries(sql)[0]["status"] == "delivered"


async def test_a_huge_odd_answer_is_recorded_as_a_short_excerpt(
    sql, db: Database, hook_settings: Settings
) -> None:
    with WebhookReceiver() as receiver:
        await subscribe(db, receiver, "sent")
        receiver.script = [502]
        receiver.reply_body = b"bad\x00gateway " * 200_000  # 2.8 MB with NULs
        (queue_id,) = insert_emails(sql, 1)
        sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (queue_id,))
        result = await one_batch(db, hook_settings, db_now(sql))
    assert (result.delivered, result.failed) == (0, 1)
    (attempt,) = attempts(sql)
    assert attempt["status_code"] == 502
    assert attempt["response_excerpt"] == ("badgateway " * 50)[:500]


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "169.254.169.254"])
async def test_private_targets_are_refused_without_the_setting(
    sql, db: Database, settings: Settings, host: str
) -> None:
    with WebhookReceiver() as receiver:
        url = receiver.url if host == "127.0.0.1" else f"http://{host}/hooks"
        await WebhookManager(db, BOX).add(url, "failed")
        (queue_id,) = insert_emails(sql, 1)
        sql.execute("UPDATE email_queue SET status = 'failed' WHERE id = %s", (queue_id,))
        result = await one_batch(db, settings, db_now(sql))
        assert receiver.arrived == 0
    assert (result.delivered, result.failed) == (0, 1)
    (attempt,) = attempts(sql)
    assert attempt["status_code"] is None
    assert f"refused: {host} is " in attempt["error"]
    assert "MAILER_WEBHOOKS_ALLOW_PRIVATE=1" in attempt["error"]
    assert deliveries(sql)[0]["status"] == "pending"


async def test_a_killed_sender_loses_nothing(
    sql, db: Database, db_url: str, hook_settings: Settings, tmp_path: Path
) -> None:
    with WebhookReceiver(delay_seconds=2.0) as receiver:
        await subscribe(db, receiver, "sent")
        ids = insert_emails(sql, 5)
        sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = ANY(%s)", (ids,))
        env = worker_env(hook_settings, db_url)
        with open(tmp_path / "sender.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "mailer", "webhooks", "run"],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                await wait_until(lambda: receiver.arrived >= 5, message="5 requests in flight")
                process.send_signal(signal.SIGKILL)
                assert process.wait(timeout=10) == -signal.SIGKILL
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
        assert {d["status"] for d in deliveries(sql)} == {"pending"}
        receiver.delay_seconds = 0.0
        async with running_sender(hook_settings, db_url):
            await wait_until(
                lambda: {d["status"] for d in deliveries(sql)} == {"delivered"},
                message="every delivery delivered",
            )
        await wait_until(lambda: len(receiver.received) >= 10, message="the killed batch")
    expected = sorted(d["webhook_id"] for d in deliveries(sql))
    assert sorted(receiver.ids()) == sorted(expected * 2)  # each once per sender
    assert all(r.verified for r in receiver.received)


async def test_an_endpoint_failing_for_a_day_is_disabled_with_the_reason(
    sql, db: Database, hook_settings: Settings
) -> None:
    with WebhookReceiver() as receiver:
        endpoint_id = await subscribe(db, receiver, "sent")
        receiver.script = [503] * 10
        (queue_id,) = insert_emails(sql, 1)
        sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (queue_id,))
        start = db_now(sql)
        await one_batch(db, hook_settings, start)
        later = await one_batch(db, hook_settings, start + timedelta(hours=23))
        assert later.disabled == ()
        endpoint = await WebhookManager(db, BOX).get(endpoint_id)
        assert endpoint is not None and endpoint.enabled and endpoint.failing_since == start
        last = await one_batch(db, hook_settings, start + timedelta(hours=24, seconds=1))
        assert last.disabled == (endpoint_id,)
        assert (await one_batch(db, hook_settings, start + timedelta(hours=25))).attempted == 0
    endpoint = await WebhookManager(db, BOX).get(endpoint_id)
    assert endpoint is not None and not endpoint.enabled
    assert endpoint.disabled_reason is not None
    assert "every delivery failed since" in endpoint.disabled_reason
    assert "HTTP 503" in endpoint.disabled_reason
    assert endpoint.pending == 1


def test_list_shows_why_an_endpoint_was_disabled_and_enable_resumes_it(mailer, sql) -> None:
    mailer("webhooks", "add", "https://hooks.example/in", "--events", "sent")
    sql.execute(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'every delivery "
        "failed since 2026-01-01 10:00 UTC; last error: HTTP 503'"
    )
    listed = mailer("webhooks", "list")
    assert "disabled: every delivery failed since 2026-01-01 10:00 UTC; last error: HTTP 503" in (
        listed
    )
    assert "webhook 1 enabled" in mailer("webhooks", "enable", "1")
    assert "https://hooks.example/in  events=sent  enabled" in mailer("webhooks", "list")


async def test_a_success_ends_the_failure_run(sql, db: Database, hook_settings: Settings) -> None:
    with WebhookReceiver() as receiver:
        endpoint_id = await subscribe(db, receiver, "sent")
        receiver.script = [500]
        ids = insert_emails(sql, 2)
        sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (ids[0],))
        start = db_now(sql)
        await one_batch(db, hook_settings, start)
        sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (ids[1],))
        await one_batch(db, hook_settings, start + timedelta(hours=23))
        assert (await one_batch(db, hook_settings, start + timedelta(hours=30))).attempted == 0
    endpoint = await WebhookManager(db, BOX).get(endpoint_id)
    assert endpoint is not None and endpoint.enabled and endpoint.failing_since is None


async def test_retries_stop_after_three_days(sql, db: Database, hook_settings: Settings) -> None:
    with WebhookReceiver() as receiver:
        await subscribe(db, receiver, "sent")
        receiver.script = [500] * 5
        (queue_id,) = insert_emails(sql, 1)
        sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (queue_id,))
        start = db_now(sql)
        await one_batch(db, hook_settings, start)
        assert deliveries(sql)[0]["status"] == "pending"
        await one_batch(
            db,
            hook_settings.with_overrides(webhook_disable_after_hours=999.0),
            start + timedelta(hours=72),
        )
    (delivery,) = deliveries(sql)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 2)


def test_cli_add_shows_the_secret_once_and_stores_it_encrypted(mailer, sql) -> None:
    out = mailer("webhooks", "add", "https://hooks.example/mailer", "--events", "sent,Clicked")
    assert "webhook 1 added: https://hooks.example/mailer (sent,clicked)" in out
    secret = out.split("secret: ")[1].split()[0]
    assert secret.startswith("whsec_")
    stored = sql.execute("SELECT secret_encrypted FROM webhook_endpoints").fetchone()
    assert secret not in stored["secret_encrypted"]
    assert BOX.decrypt(stored["secret_encrypted"]) == secret
    listed = mailer("webhooks", "list")
    assert "https://hooks.example/mailer  events=sent,clicked  enabled" in listed
    assert secret not in listed and secret not in mailer("webhooks", "list", "--json")
    assert "webhook 1 removed" in mailer("webhooks", "remove", "1")
    assert "no webhook 1" in mailer("webhooks", "remove", "1", code=1)
    assert mailer("webhooks", "list") == ""


@pytest.mark.parametrize(
    ("url", "events", "message"),
    [
        ("ftp://hooks.example/", "sent", "must be http:// or https://"),
        ("https://user:pw@hooks.example/", "sent", "must not carry credentials"),
        ("https://hooks.example/", "sent,shipped", "unknown event(s) shipped"),
        ("https://hooks.example/", ",", "at least one event"),
    ],
)
async def test_bad_endpoints_are_refused(db: Database, url: str, events: str, message: str) -> None:
    with pytest.raises(WebhookError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await WebhookManager(db, BOX).add(url, events)


def test_the_sync_manager_works_over_the_web_apps_store(db_url: str, sql) -> None:
    from mailer.webhooks_out import SyncWebhookManager
    from tracking.store import Store

    store = Store(db_url, timeout=5.0)
    try:
        manager = SyncWebhookManager(store, BOX)
        created = manager.add("https://hooks.example/api", ["opened", "sent"])
        assert created.endpoint.events == ("opened", "sent")
        stored = sql.execute("SELECT secret_encrypted FROM webhook_endpoints").fetchone()
        assert BOX.decrypt(stored["secret_encrypted"]) == created.secret
        assert manager.list() == [created.endpoint]
        assert manager.get(created.endpoint.id) == created.endpoint
        assert manager.enable(created.endpoint.id) and manager.remove(created.endpoint.id)
        assert (manager.get(created.endpoint.id), manager.remove(created.endpoint.id)) == (
            None,
            False,
        )
        with pytest.raises(WebhookError, match="unknown event"):
            manager.add("https://hooks.example/api", "read")
    finally:
        store.close()


async def test_suppressed_and_cancelled_rows_produce_events_with_the_reason(
    sql, db: Database, db_url: str, hook_settings: Settings
) -> None:
    with WebhookReceiver() as receiver, ScriptedSMTPServer() as smtp:
        await subscribe(db, receiver, "suppressed,cancelled")
        sql.execute(
            "INSERT INTO suppressions (email, reason) VALUES ('gone@example.org', 'complaint')"
        )
        account = add_account(sql, smtp)
        suppressed, sent = insert_emails(
            sql,
            2,
            account_id=account,
            to_address=lambda i: ["gone@example.org", "ok@example.org"][i],
        )
        (cancelled,) = insert_emails(sql, 1, scheduled_at=db_now(sql) + timedelta(hours=1))
        sql.execute(
            "UPDATE email_queue SET status = 'cancelled', last_error = 'not wanted' WHERE id = %s",
            (cancelled,),
        )
        async with running_worker(hook_settings, db_url, account):
            await wait_until(
                lambda: _status(sql, suppressed) == "suppressed" and _status(sql, sent) == "sent",
                message="one row suppressed, one sent",
            )
        async with running_sender(hook_settings, db_url):
            await wait_until(lambda: len(receiver.received) >= 2, message="2 webhooks")
    assert all(r.verified for r in receiver.received)
    got = {r.payload["data"]["email_id"]: r.payload for r in receiver.received}
    assert set(got) == {suppressed, cancelled}  # the sent row is not subscribed to
    assert got[suppressed]["type"] == "email.suppressed"
    assert got[suppressed]["data"]["reason"] == "address is suppressed (complaint)"
    assert got[suppressed]["data"]["to"] == "gone@example.org"
    assert (got[cancelled]["type"], got[cancelled]["data"]["reason"]) == (
        "email.cancelled",
        "not wanted",
    )


async def test_a_new_delivery_wakes_an_idle_sender_at_once(
    sql, db: Database, db_url: str, slow_poll: Settings
) -> None:
    with WebhookReceiver() as receiver:
        await subscribe(db, receiver, "sent")
        (queue_id,) = insert_emails(sql, 1)
        async with running_sender(slow_poll, db_url):
            await asyncio.sleep(1.0)  # past its first look: idle, sleeping up to 30 s
            sql.execute("UPDATE email_queue SET status = 'sent' WHERE id = %s", (queue_id,))
            started = asyncio.get_running_loop().time()
            await wait_until(lambda: len(receiver.received) >= 1, timeout=10, message="woken")
            waited = asyncio.get_running_loop().time() - started
    assert waited < 2.0, f"the delivery waited {waited:.1f} s"
    assert receiver.received[0].payload["data"]["email_id"] == queue_id


def _status(sql: psycopg.Connection, queue_id: int) -> str:
    return sql.execute("SELECT status FROM email_queue WHERE id = %s", (queue_id,)).fetchone()[
        "status"
    ]
