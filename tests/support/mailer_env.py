"""Test helpers that act as Mailer's users do: admins INSERT accounts, other systems
INSERT mail, and a worker runs for real (in-process, on this test's event loop)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from mailer.config import Settings
from mailer.worker import Worker


def add_account(sql: psycopg.Connection, smtp: Any, *, email: str = "sender@example.com",
                **columns: Any) -> int:
    """INSERT an active SMTP account pointing at ``smtp`` (no TLS); return its id."""
    values = {"email": email, "smtp_host": smtp.host, "smtp_port": smtp.port,
              "smtp_security": "none", "daily_limit": 10_000, "min_delay_ms": 0} | columns
    names = ", ".join(values)
    marks = ", ".join(f"%({k})s" for k in values)
    row = sql.execute(f"INSERT INTO sender_accounts ({names}) VALUES ({marks}) RETURNING id",
                      values).fetchone()
    return row["id"]


def insert_emails(sql: psycopg.Connection, count: int, **columns: Any) -> list[int]:
    """INSERT ``count`` rows (to user<i>@example.org unless given); return their ids."""
    ids = []
    for i in range(count):
        values = {"to_address": f"user{i}@example.org", "subject": f"Hello {i}",
                  "html_body": f"<p>Message {i}</p>"} | columns
        if callable(values.get("to_address")):
            values["to_address"] = values["to_address"](i)
        from psycopg.types.json import Jsonb

        values = {k: Jsonb(v) if isinstance(v, dict) else v for k, v in values.items()}
        names = ", ".join(values)
        marks = ", ".join(f"%({k})s" for k in values)
        ids.append(sql.execute(f"INSERT INTO email_queue ({names}) VALUES ({marks}) RETURNING id",
                               values).fetchone()["id"])
    return ids


def statuses(sql: psycopg.Connection) -> dict[str, int]:
    rows = sql.execute("SELECT status, count(*) AS n FROM email_queue GROUP BY status").fetchall()
    return {r["status"]: r["n"] for r in rows}


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0,
                     message: str = "condition") -> None:
    """Poll ``predicate`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@asynccontextmanager
async def running_worker(settings: Settings, db_url: str, account_id: int,
                         **kwargs: Any) -> AsyncIterator[Worker]:
    """Run a real Worker for ``account_id`` until the block ends; re-raise its crash."""
    worker = Worker(settings, db_url, account_id, **kwargs)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.request_stop("test finished")
        code = await asyncio.wait_for(task, timeout=15)
        worker.exit_code_seen = code  # type: ignore[attr-defined]
