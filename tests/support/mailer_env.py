"""Test helpers that act as Mailer's users do: admins INSERT accounts, other systems
INSERT mail, and a worker runs for real (in-process, on this test's event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from mailer.config import Settings, env_name
from mailer.worker import Worker

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_account(
    sql: psycopg.Connection, smtp: Any, *, email: str = "sender@example.com", **columns: Any
) -> int:
    """INSERT an active SMTP account pointing at ``smtp`` (no TLS); return its id."""
    values = {
        "email": email,
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "daily_limit": 10_000,
        "min_delay_ms": 0,
    } | columns
    names = ", ".join(values)
    marks = ", ".join(f"%({k})s" for k in values)
    row = sql.execute(
        f"INSERT INTO sender_accounts ({names}) VALUES ({marks}) RETURNING id", values
    ).fetchone()
    return row["id"]


def insert_emails(sql: psycopg.Connection, count: int, **columns: Any) -> list[int]:
    """INSERT ``count`` rows (to user<i>@example.org unless given); return their ids."""
    ids = []
    for i in range(count):
        values = {
            "to_address": f"user{i}@example.org",
            "subject": f"Hello {i}",
            "html_body": f"<p>Message {i}</p>",
        } | columns
        if callable(values.get("to_address")):
            values["to_address"] = values["to_address"](i)
        from psycopg.types.json import Jsonb

        values = {k: Jsonb(v) if isinstance(v, dict) else v for k, v in values.items()}
        names = ", ".join(values)
        marks = ", ".join(f"%({k})s" for k in values)
        ids.append(
            sql.execute(
                f"INSERT INTO email_queue ({names}) VALUES ({marks}) RETURNING id", values
            ).fetchone()["id"]
        )
    return ids


def statuses(sql: psycopg.Connection) -> dict[str, int]:
    rows = sql.execute("SELECT status, count(*) AS n FROM email_queue GROUP BY status").fetchall()
    return {r["status"]: r["n"] for r in rows}


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 15.0, message: str = "condition"
) -> None:
    """Poll ``predicate`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@asynccontextmanager
async def running_worker(
    settings: Settings, db_url: str, account_id: int, **kwargs: Any
) -> AsyncIterator[Worker]:
    """Run a real Worker for ``account_id`` until the block ends; re-raise its crash."""
    worker = Worker(settings, db_url, account_id, **kwargs)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.request_stop("test finished")
        code = await asyncio.wait_for(task, timeout=15)
        worker.exit_code_seen = code  # type: ignore[attr-defined]


@asynccontextmanager
async def running_service(service: Any) -> AsyncIterator[Any]:
    """Run ``service.run()`` (a webhook sender, a recurring scheduler ...) until the block
    ends; then stop it and check it exited 0."""
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        service.request_stop("test finished")
        assert await asyncio.wait_for(task, timeout=15) == 0


def advisory_lock_held(sql: psycopg.Connection, classid: int) -> bool:
    """Whether some session holds a Mailer advisory lock of ``classid`` (734603: the
    bounce reader's, 734604: the recurring scheduler's) in this test's database."""
    row = sql.execute(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
        "AND granted AND database = (SELECT oid FROM pg_database WHERE datname = "
        "current_database())",
        (classid,),
    ).fetchone()
    return row["n"] > 0


@contextmanager
def mailer_run(db_url: str, tmp_path: Path, **settings: str) -> Iterator[subprocess.Popen]:
    """``python -m mailer run`` on the test database in its own session, output in
    ``tmp_path/run.log``; whatever is left of its process group is killed after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env |= {
        "DATABASE_URL": db_url,
        "MAILER_HOME": str(tmp_path / "home"),
        "MAILER_SECRET_KEY": "test-secret-key",
    } | settings
    with open(tmp_path / "run.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailer", "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# -- helpers for the worker integration suites (limits, failures, crashes, claiming) -------

#: Timestamps are stored with microsecond precision: a gap computed in floats may lose 1 us.
TIMESTAMP_SLACK = timedelta(microseconds=2)


def rows_by_id(sql: psycopg.Connection) -> dict[int, dict[str, Any]]:
    """Every ``email_queue`` row, by id."""
    return {r["id"]: r for r in sql.execute("SELECT * FROM email_queue ORDER BY id")}


def send_logs(sql: psycopg.Connection, queue_id: int | None = None) -> list[dict[str, Any]]:
    """``send_logs`` rows (of one queue row, or all), oldest first."""
    if queue_id is None:
        return sql.execute("SELECT * FROM send_logs ORDER BY created_at, id").fetchall()
    return sql.execute(
        "SELECT * FROM send_logs WHERE queue_id = %s ORDER BY created_at, id", (queue_id,)
    ).fetchall()


def account_row(sql: psycopg.Connection, account_id: int) -> dict[str, Any]:
    return sql.execute("SELECT * FROM sender_accounts WHERE id = %s", (account_id,)).fetchone()


def backing_off(
    sql: psycopg.Connection, account_id: int, seen: list[dict[str, Any]] | None = None
) -> bool:
    """True while the account's ``backoff_until`` is in the future (then its row is
    appended to ``seen``, for the assertions after)."""
    acc = account_row(sql, account_id)
    if acc["backoff_until"] is not None and acc["backoff_until"] > db_now(sql):
        if seen is not None:
            seen.append(acc)
        return True
    return False


def db_now(sql: psycopg.Connection, offset_seconds: float = 0.0) -> datetime:
    """The database's clock, plus ``offset_seconds``."""
    row = sql.execute("SELECT now() + make_interval(secs => %s) AS t", (offset_seconds,)).fetchone()
    return row["t"]


def count_sent(sql: psycopg.Connection) -> int:
    """Rows a worker sent (``add_history`` rows have no ``sent_at`` and do not count)."""
    return sql.execute(
        "SELECT count(*) AS n FROM email_queue WHERE status = 'sent' AND sent_at IS NOT NULL"
    ).fetchone()["n"]


def add_history(
    sql: psycopg.Connection, account_id: int, ages_seconds: list[float], *, counted: bool = True
) -> None:
    """Sends from before the worker started: one already 'sent' queue row (no ``sent_at``,
    so :func:`count_sent` ignores it) plus one ``send_logs`` row per age (seconds before
    now), as an earlier worker left them."""
    [qid] = insert_emails(
        sql, 1, to_address="history@example.org", status="sent", account_id=account_id
    )
    for age in ages_seconds:
        sql.execute(
            "INSERT INTO send_logs (queue_id, account_id, outcome, counted, code, "
            "created_at) VALUES (%s, %s, 'sent', %s, 250, "
            "now() - make_interval(secs => %s))",
            (qid, account_id, counted, age),
        )


async def hold(predicate: Callable[[], bool], seconds: float, message: str = "condition") -> None:
    """Assert ``predicate`` stays true for ``seconds`` (checked every 50 ms)."""
    deadline = time.monotonic() + seconds
    while True:
        if not predicate():
            raise AssertionError(f"{message} stopped holding")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.05)


def received_by_message_id(smtp: Any) -> dict[str, list[Any]]:
    """What the SMTP server accepted, grouped by the Message-ID header it carried."""
    grouped: dict[str, list[Any]] = {}
    for received in smtp.received:
        grouped.setdefault(received.message["Message-ID"], []).append(received)
    return grouped


def smtp_rules_left(smtp: Any) -> int:
    """How many scripted rules the server has not used up yet (a delay_data rule is
    removed when the message it delays arrives: 0 then means it is being held)."""
    with smtp._lock:
        return len(smtp._rules)


def account_lock_held(sql: psycopg.Connection, account_id: int) -> bool:
    """True while some session holds the worker lock of ``account_id`` in this database."""
    row = sql.execute(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 734602 "
        "AND objid = %s AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (account_id,),
    ).fetchone()
    return row["n"] > 0


def worker_env(settings: Settings, db_url: str) -> dict[str, str]:
    """The environment a ``python -m mailer worker`` needs to run with ``settings``."""
    env = dict(os.environ)
    for field in fields(Settings):
        if field.name != "database_url":
            env[env_name(field.name)] = str(getattr(settings, field.name))
    env["DATABASE_URL"] = db_url
    return env


class WorkerProcess:
    """A real ``python -m mailer worker --account-id N`` subprocess; stderr goes to a file."""

    def __init__(self, settings: Settings, db_url: str, account_id: int, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailer", "worker", "--account-id", str(account_id)],
            env=worker_env(settings, db_url),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def wait_exit(self, timeout: float = 15.0) -> int:
        """The exit code, polled without blocking the event loop."""
        await wait_until(
            lambda: self.proc.poll() is not None,
            timeout,
            f"worker pid {self.pid} to exit; its log:\n{self.stderr()}",
        )
        return self.proc.returncode

    def close(self) -> None:
        """Kill the process if it still runs, reap it and close its log."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._log.close()


@contextmanager
def worker_process(
    settings: Settings, db_url: str, account_id: int, log_path: Path
) -> Iterator[WorkerProcess]:
    """Run a worker subprocess for the block; whatever happens it is reaped after."""
    process = WorkerProcess(settings, db_url, account_id, log_path)
    try:
        yield process
    finally:
        process.close()
