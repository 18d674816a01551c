"""Many hosts for real: two ``mailer run`` orchestrators, each with its own ``MAILER_HOME``
and ``MAILER_HOST_ID``, on one database. They split the accounts by count; when one is
killed (-9, its workers with it) the other takes every account within 30 s, no row is
lost and no account exceeds its limits."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import timedelta

import psycopg
import pytest

from mailer.status import collect_status, format_status
from tests.integration.test_orchestrator import child_env, orchestrator, parent_of, workers
from tests.support.mailer_env import add_account, insert_emails, statuses, wait_until
from tests.support.smtp_server import ScriptedSMTPServer

ACCOUNTS = 12
DAILY_LIMIT = 12
MIN_DELAY_MS = 150
ROWS = 120
#: Seconds after which a host is dead (the default is 10; the test keeps it).
DEAD_SECONDS = 10.0


def host_env(db_url: str, home, host_id: str) -> dict[str, str]:
    home.mkdir()
    return child_env(
        db_url,
        home,
        MAILER_HOST_ID=host_id,
        MAILER_HOST_DEAD_SECONDS=str(DEAD_SECONDS),
        MAILER_BOUNCE_READER="0",
        MAILER_WEBHOOK_SENDER="0",
    )


def placed(sql: psycopg.Connection) -> Counter[str]:
    rows = sql.execute("SELECT host_id FROM account_placements").fetchall()
    return Counter(r["host_id"] for r in rows)


def live_workers_by_parent(sql: psycopg.Connection) -> Counter[int | None]:
    """How many accounts have exactly one registered, live worker, by its parent pid."""
    found: Counter[int | None] = Counter()
    for pids in workers(sql).values():
        parents = [parent_of(pid) for pid in pids]
        live = [p for p in parents if p is not None]
        if len(live) == 1:
            found[live[0]] += 1
    return found


def check_limits(sql: psycopg.Connection) -> None:
    """Per account: counted attempts within the daily limit, and sends (``sent`` logs) at
    least ``min_delay_ms`` apart, by ``send_logs.created_at``."""
    logs = sql.execute(
        "SELECT account_id, outcome, created_at FROM send_logs WHERE counted "
        "ORDER BY account_id, created_at"
    ).fetchall()
    per_account = Counter(r["account_id"] for r in logs)
    assert max(per_account.values()) <= DAILY_LIMIT, per_account
    last: dict[int, object] = {}
    for r in logs:
        if r["outcome"] != "sent":
            continue  # 'unknown' rows are logged at recovery, not when the send happened
        before = last.get(r["account_id"])
        if before is not None:
            assert r["created_at"] - before >= timedelta(milliseconds=MIN_DELAY_MS - 5), r
        last[r["account_id"]] = r["created_at"]


@pytest.mark.slow
async def test_two_hosts_split_the_accounts_and_one_takes_over_when_the_other_dies(
    sql, db, db_url, tmp_path
):
    with ScriptedSMTPServer() as smtp:
        for i in range(ACCOUNTS):
            add_account(
                sql, smtp, email=f"s{i}@example.com", daily_limit=DAILY_LIMIT,
                min_delay_ms=MIN_DELAY_MS,
            )  # fmt: skip
        with (
            orchestrator(host_env(db_url, tmp_path / "a", "host-a"), tmp_path / "a.log") as a,
            orchestrator(host_env(db_url, tmp_path / "b", "host-b"), tmp_path / "b.log") as b,
        ):

            def balanced() -> bool:
                hosts = placed(sql)
                running = live_workers_by_parent(sql)
                return (
                    sum(hosts.values()) == ACCOUNTS
                    and abs(hosts["host-a"] - hosts["host-b"]) <= 1
                    and running[a.pid] == hosts["host-a"]
                    and running[b.pid] == hosts["host-b"]
                )

            await wait_until(balanced, timeout=30, message="accounts split between hosts")
            report = await collect_status(db)
            assert {h["host_id"]: h["accounts"] for h in report["hosts"]} == dict(placed(sql))
            assert {a["host"] for a in report["accounts"]} == {"host-a", "host-b"}
            assert "host-b" in format_status(report)

            insert_emails(sql, ROWS)
            await wait_until(lambda: len(smtp.received) >= 20, message="sends under way")
            os.killpg(b.pid, signal.SIGKILL)  # the orchestrator and its workers
            killed_at = time.monotonic()
            await wait_until(
                lambda: live_workers_by_parent(sql)[a.pid] == ACCOUNTS,
                timeout=30,
                message="host-a running every account",
            )
            takeover = time.monotonic() - killed_at
            print(f"take-over after kill -9 of a host: {takeover:.1f} s")
            assert placed(sql) == {"host-a": ACCOUNTS}
            await wait_until(
                lambda: statuses(sql).get("sent", 0) == ROWS, timeout=60, message="all sent"
            )
            assert a.terminate() == 0
        assert takeover < 30
        check_limits(sql)
        recipients = Counter(m.rcpt_tos[0] for m in smtp.received)
        assert len(recipients) == ROWS  # every row delivered; at most the rows in flight
        assert sum(recipients.values()) - ROWS <= ACCOUNTS // 2  # of the killed host twice
        senders = Counter(m.mail_from for m in smtp.received)
        assert max(senders.values()) <= DAILY_LIMIT
    assert placed(sql) == {}  # host-a handed its accounts back when it stopped


@pytest.mark.slow
async def test_a_joining_host_gets_its_share_from_workers_stopped_gracefully(sql, db_url, tmp_path):
    with ScriptedSMTPServer() as smtp:
        for i in range(6):
            add_account(sql, smtp, email=f"j{i}@example.com")
        first_env = host_env(db_url, tmp_path / "a", "host-a")
        with orchestrator(first_env, tmp_path / "a.log") as a:
            await wait_until(lambda: live_workers_by_parent(sql)[a.pid] == 6, timeout=30)
            with orchestrator(host_env(db_url, tmp_path / "b", "host-b"), tmp_path / "b.log") as b:

                def split() -> bool:
                    running = live_workers_by_parent(sql)
                    return running[a.pid] == 3 and running[b.pid] == 3

                await wait_until(split, timeout=30, message="three accounts each")
                assert placed(sql) == {"host-a": 3, "host-b": 3}
                insert_emails(sql, 30)
                await wait_until(lambda: statuses(sql) == {"sent": 30}, timeout=30)
                assert b.terminate() == 0
                # host-b handed its accounts back when it stopped: host-a takes them at once
                await wait_until(lambda: live_workers_by_parent(sql)[a.pid] == 6, timeout=15)
            assert a.terminate() == 0
        released = a.log.count("placed on another host")
        assert released == 3, a.log
        assert "exited with exit code 3" not in a.log + b.log  # no lock fight on the way
    assert len(smtp.received) == 30
