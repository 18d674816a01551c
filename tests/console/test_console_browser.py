"""The console in a real browser (Playwright + Debian's Chromium): log in, watch a live
counter move while a real worker sends, edit a limit and see the worker apply it, retry a
failed message, remove a suppression. Screenshots go to ``.test-artifacts/console``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from playwright.sync_api import expect

from mailer.config import Settings
from tests.console.conftest import ADMIN, PASSWORD
from tests.support.browser import chromium_page, screenshot
from tests.support.mailer_env import add_account, insert_emails, worker_process
from tests.support.smtp_server import ScriptedSMTPServer
from tracking.server import BackgroundServer

pytestmark = pytest.mark.slow


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium_page() as page:
        yield page


@pytest.fixture
def base(app: Flask, admin_user: str) -> Iterator[str]:
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture
def smtp() -> Iterator[ScriptedSMTPServer]:
    with ScriptedSMTPServer() as server:
        yield server


@pytest.fixture
def start_worker(settings: Settings, db_url: str, tmp_path: Path) -> Callable[[int], Any]:
    """Runs a real worker subprocess for an account, as a context manager."""
    return lambda account_id: worker_process(settings, db_url, account_id, tmp_path / "w.log")


def eventually(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    page.fill("input[name=email]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def sent(sql: psycopg.Connection) -> int:
    return sql.execute("SELECT count(*) AS n FROM email_queue WHERE status = 'sent'").fetchone()[
        "n"
    ]


def test_live_counter_moves_and_an_edited_limit_is_applied(
    page: Any, base: str, sql: psycopg.Connection, smtp: ScriptedSMTPServer, start_worker: Any
):
    acct = add_account(sql, smtp, daily_limit=2, min_delay_ms=200)
    insert_emails(sql, 6)
    log_in(page, base)
    counter = page.locator("[data-live=sent]")
    assert counter.inner_text() == "0"
    page.evaluate("window.notReloaded = true")
    with start_worker(acct):
        expect(counter).to_have_text("2", timeout=20_000)
        assert page.evaluate("window.notReloaded") is True  # updated in place, no reload
        screenshot(page, "overview-live-counter")
        time.sleep(1.5)
        assert sent(sql) == 2  # held at the daily limit

        page.goto(f"{base}/admin/accounts/{acct}")
        page.fill("input[name=daily_limit]", "5")
        page.click("text=Save limits")
        page.wait_for_selector("text=Limits of sender@example.com saved")
        screenshot(page, "account-limit-saved")
        eventually(lambda: sent(sql) == 5, 20, "the worker to apply the new limit")
        time.sleep(1.5)
        assert sent(sql) == 5
    page.goto(f"{base}/admin/accounts/{acct}")
    assert page.locator("#sent-last-day").inner_text() == "5"
    page.goto(f"{base}/admin/audit")
    assert page.locator("text=account.set_limits").count() == 1


def test_retry_a_failed_message_and_remove_a_suppression(
    page: Any, base: str, sql: psycopg.Connection, smtp: ScriptedSMTPServer, start_worker: Any
):
    acct = add_account(sql, smtp)
    [row] = insert_emails(sql, 1, status="failed", last_error="550 mailbox full", attempts=5)
    sql.execute(
        "INSERT INTO suppressions (email, reason, source) VALUES ('gone@example.org', "
        "'hard_bounce', 'test')"
    )
    log_in(page, base)
    with start_worker(acct):
        page.goto(f"{base}/admin/messages?status=failed")
        page.click(f"a[href='/admin/messages/{row}']")
        page.click("button:has-text('Retry')")
        page.wait_for_selector(f"text=Message {row}: retry done.")
        eventually(lambda: smtp.received != [], 20, "the retried message to arrive")
    page.reload()
    assert page.locator("#message-status").inner_text() == "sent"
    assert page.locator("text=attempt: sent").count() == 1
    screenshot(page, "message-retried")

    page.goto(f"{base}/admin/suppressions")
    page.click("text=Remove…")
    page.wait_for_selector("text=Remove the suppression of gone@example.org?")
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 1
    page.click("text=Yes, remove it")
    page.wait_for_selector("text=gone@example.org is no longer suppressed.")
    screenshot(page, "suppression-removed")
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 0
