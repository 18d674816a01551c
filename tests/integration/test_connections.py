"""Connections (issue 12): ``mailer run`` holds its workers' account locks on one session of
its own (taking many in one statement) and relays NOTIFYs to them as signals, so an idle
worker holds no server connection and nothing wakes it; the lock still excludes a
standalone worker, and a lost lock session takes the workers down before the locks can
be taken again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.integration.test_orchestrator import child_env, one_worker, orchestrator, workers
from tests.support.mailer_env import (
    add_account,
    insert_emails,
    statuses,
    wait_until,
    worker_process,
)
from tests.support.smtp_server import ScriptedSMTPServer


def client_backends(sql: psycopg.Connection) -> int:
    """Server connections to this test's database, not counting the test's own."""
    row = sql.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    ).fetchone()
    return int(row["n"])


def lock_holder(sql: psycopg.Connection, account_id: int) -> int | None:
    row = sql.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 734602 "
        "AND objid = %s AND objsubid = 2 AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (account_id,),
    ).fetchone()
    return row["pid"] if row else None


def workers_only_env(db_url: str, home: Path, **overrides: str) -> dict[str, str]:
    """``mailer run``'s environment without its companions (only workers connect)."""
    return child_env(
        db_url,
        home,
        MAILER_BOUNCE_READER="0",
        MAILER_WEBHOOK_SENDER="0",
        MAILER_RECURRING_SCHEDULER="0",
        **overrides,
    )


@asynccontextmanager
async def one_fast_settling_worker(
    sql: psycopg.Connection, db_url: str, home: Path, *, poll_seconds: str
) -> AsyncIterator[tuple[ScriptedSMTPServer, int, int]]:
    """``mailer run`` (workers only) with one account whose worker is past its first lease
    period within 3 s; the orchestrator checks for due rows every half ``poll_seconds``.
    Yields the SMTP server, the account and its worker's pid."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        env = workers_only_env(
            db_url, home, MAILER_LEASE_SECONDS="2", MAILER_POLL_SECONDS=poll_seconds
        )
        with orchestrator(env, home / "orch.log") as orch:
            yield smtp, account, await one_worker(sql, account, parent=orch.pid, timeout=30)


@pytest.mark.slow
async def test_idle_workers_hold_no_connection_and_the_orchestrator_holds_their_locks(
    sql, db_url, settings, tmp_path: Path
):
    with ScriptedSMTPServer() as smtp:
        accounts = [
            add_account(sql, smtp, email=f"a{i}@example.com", pool=f"p{i}") for i in range(3)
        ]
        env = workers_only_env(
            db_url,
            tmp_path,
            MAILER_POLL_SECONDS="60",  # only the relayed NOTIFY can wake an idle worker
        )
        with orchestrator(env, tmp_path / "orch.log") as orch:
            pids = [await one_worker(sql, a, parent=orch.pid, timeout=30) for a in accounts]
            holders = {lock_holder(sql, a) for a in accounts}
            assert len(holders) == 1 and None not in holders, "one session holds every lock"
            # Past the first lease period the workers' query connections close: what is
            # left is the orchestrator's (LISTEN, locks, queries), not 2 per worker.
            await wait_until(
                lambda: client_backends(sql) <= 3, timeout=30, message="idle connections closed"
            )

            insert_emails(sql, 2, account_id=accounts[0])
            await wait_until(lambda: statuses(sql) == {"sent": 2}, message="woken by the relay")

            settings = settings.with_overrides(home=tmp_path / "standalone")
            with worker_process(settings, db_url, accounts[1], tmp_path / "alone.log") as alone:
                assert await alone.wait_exit() == 3  # the orchestrator holds its lock

            # The lock session is lost: its workers are killed, then run again.
            sql.execute("SELECT pg_terminate_backend(%s)", (holders.pop(),))
            for account_id, pid in zip(accounts, pids, strict=True):
                await one_worker(sql, account_id, parent=orch.pid, not_pid=pid, timeout=15)
            assert "lost the session holding the account locks" in orch.log
            insert_emails(sql, 1, account_id=accounts[2], to_address=lambda i: "late@example.org")
            await wait_until(lambda: statuses(sql) == {"sent": 3}, message="sent after")
    assert len(smtp.received) == 3


@pytest.mark.slow
async def test_the_orchestrator_proves_idle_workers_alive_and_wakes_them_when_rows_fall_due(
    sql, db_url, tmp_path: Path
):
    # the orchestrator looks for due rows every second; the workers every 10 min
    async with one_fast_settling_worker(sql, db_url, tmp_path, poll_seconds="2") as (
        smtp,
        account,
        _,
    ):
        [row] = insert_emails(sql, 1, account_id=account, scheduled_at=_in_an_hour(sql))
        await asyncio.sleep(4)  # the worker saw the row, settled and went idle
        # An idle worker beats every ~10 min: only its orchestrator keeps it live.
        sql.execute("UPDATE workers SET heartbeat_at = now() - interval '1 hour'")
        await wait_until(lambda: _live_workers(sql) == 1, timeout=15, message="heartbeat refreshed")
        # Due now, without a NOTIFY (as a requeue or a retry falls due): the worker's
        # own poll is minutes away; the orchestrator wakes it.
        sql.execute("UPDATE email_queue SET scheduled_at = now() WHERE id = %s", (row,))
        await wait_until(lambda: statuses(sql) == {"sent": 1}, timeout=10, message="woken")
    assert len(smtp.received) == 1


def _in_an_hour(sql: psycopg.Connection) -> object:
    return sql.execute("SELECT now() + interval '1 hour' AS t").fetchone()["t"]


def _live_workers(sql: psycopg.Connection) -> int:
    row = sql.execute(
        "SELECT count(*) AS n FROM workers WHERE heartbeat_at > now() - interval '30 seconds'"
    ).fetchone()
    return int(row["n"])


async def test_the_lock_session_takes_many_locks_in_one_statement_and_each_once(sql, db_url):
    from orchestrator.account_locks import AccountLocks

    with ScriptedSMTPServer() as smtp:
        a, b, c = (add_account(sql, smtp, email=f"l{i}@example.com") for i in range(3))
    elsewhere = psycopg.connect(db_url, autocommit=True)
    try:
        elsewhere.execute("SELECT pg_advisory_lock(734602, %s)", (b,))
        locks = AccountLocks(db_url)
        try:
            assert await locks.take([a, b, c]) == {a, c}, "b is held by another session"
            assert await locks.take([a, c]) == {a, c}, "held already: not taken twice"
            session = lock_holder(sql, a)
            assert lock_holder(sql, c) == session and lock_holder(sql, b) != session
            await locks.release(a)  # taken once, so one release frees it
            assert lock_holder(sql, a) is None
        finally:
            await locks.close()
    finally:
        elsewhere.close()


@pytest.mark.slow
async def test_an_idle_worker_holds_no_connection_sleeps_without_a_timer_and_still_sends(
    sql, db_url, tmp_path: Path
):
    # the orchestrator's check for due rows falls outside the measured window
    async with one_fast_settling_worker(sql, db_url, tmp_path, poll_seconds="600") as (
        smtp,
        account,
        pid,
    ):
        # Settled and idle: its one connection closes 5 s after its last query.
        await wait_until(
            lambda: client_backends(sql) <= 3, timeout=30, message="its connection closed"
        )
        await asyncio.sleep(1)
        worker = psutil.Process(pid)
        before = worker.num_ctx_switches().voluntary
        await asyncio.sleep(12)  # psycopg_pool woke it every 5 s (max_idle) here
        woken = worker.num_ctx_switches().voluntary - before
        assert woken == 0, f"an idle worker woke {woken} times in 12 s"
        assert client_backends(sql) <= 3

        insert_emails(sql, 2, account_id=account)  # NOTIFY -> SIGUSR1 from the parent
        await wait_until(lambda: statuses(sql) == {"sent": 2}, message="woken to send")
        assert workers(sql)[account] == [pid], "the same worker, woken"
    assert len(smtp.received) == 2
