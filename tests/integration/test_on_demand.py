"""The worker's one connection (mailer/on_demand.py, issue 12): opened by the first
query, closed after it sat unused, and with none open nothing scheduled, so an idle worker
is never woken by its database layer; a connection that broke or was left inside a
transaction is never handed out again."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from mailer.db import Database
from tests.support.mailer_env import wait_until


def backends(sql: psycopg.Connection, application: str) -> list[int]:
    """Server pids of this test database's sessions named ``application``."""
    rows = sql.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = %s",
        (application,),
    ).fetchall()
    return [r["pid"] for r in rows]


def named(db_url: str, application: str) -> str:
    return psycopg.conninfo.make_conninfo(db_url, application_name=application)


async def test_opened_on_first_use_closed_when_unused_and_nothing_scheduled_after(sql, db_url):
    async with Database(named(db_url, "on-demand-1"), on_demand_idle=0.5) as db:
        assert backends(sql, "on-demand-1") == [], "nothing opens before the first query"
        assert (await db.fetch_one("db_now"))["now"] is not None
        [first] = backends(sql, "on-demand-1")
        await db.fetch_one("db_now")
        assert backends(sql, "on-demand-1") == [first], "reused while in use"

        await asyncio.sleep(0.8)
        assert db.pool.conn is None, "closed once unused for 0.5 s"
        await wait_until(lambda: backends(sql, "on-demand-1") == [], message="it closed")
        # Nothing left to wake the process: no timer, no task.
        assert db.pool.conn is None
        assert db.pool._expiry is None and db.pool._closing is None
        scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
        assert not [h for h in scheduled if not h.cancelled()], "no timer left behind"

        assert await db.execute("db_now") == 1
        [second] = backends(sql, "on-demand-1")
        assert second != first, "opened again on demand"


async def test_queries_take_turns_on_the_one_connection(sql, db_url):
    async with Database(named(db_url, "on-demand-2"), on_demand_idle=5) as db:
        results = await asyncio.gather(*(db.fetch_one("db_now") for _ in range(5)))
        assert len(results) == 5
        assert len(backends(sql, "on-demand-2")) == 1


async def test_a_broken_or_abandoned_connection_is_not_used_again(sql, db_url):
    async with Database(named(db_url, "on-demand-3"), on_demand_idle=5) as db:
        await db.fetch_one("db_now")
        [pid] = backends(sql, "on-demand-3")
        sql.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            await db.fetch_one("db_now")
        assert (await db.fetch_one("db_now"))["now"] is not None, "a new connection"
        [again] = backends(sql, "on-demand-3")
        assert again != pid

        with pytest.raises(ZeroDivisionError):
            async with db.pool.connection() as conn:
                await conn.execute("BEGIN")
                raise ZeroDivisionError  # left inside a transaction
        assert db.pool.conn is None, "closed, not handed out mid-transaction"
        await wait_until(lambda: backends(sql, "on-demand-3") == [], message="it closed")
        await db.fetch_one("db_now")


async def test_a_cancelled_query_does_not_leave_its_connection_busy(sql, db_url):
    async with Database(named(db_url, "on-demand-4"), on_demand_idle=5) as db:
        slow = asyncio.ensure_future(_sleep_in_database(db))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert (await db.fetch_one("db_now"))["now"] is not None


async def _sleep_in_database(db: Database) -> None:
    async with db.pool.connection() as conn:
        await conn.execute("SELECT pg_sleep(5)")
