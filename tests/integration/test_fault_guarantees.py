"""The delivery guarantees under the faults a reviewer reproduced (issue 7): a recovery
racing the in-flight mark, a restart next to a row left in flight, a recovery after the
worker started, a limit lowered between the worker's check and its mark, a row that kills
every worker that prepares it, and a database outage after the 250 arrived. Each test
failed before its fix."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from mailer.db import Database
from mailer.limits import Limits
from mailer.queue import QueueManager
from tests.support.mailer_env import (
    add_account,
    add_history,
    count_sent,
    hold,
    insert_emails,
    rows_by_id,
    running_worker,
    send_logs,
    smtp_rules_left,
    statuses,
    wait_until,
    worker_process,
)
from tests.support.smtp_server import ScriptedSMTPServer

LIMITS = Limits(daily_limit=10_000, hourly_limit=None, min_delay_ms=0)


def leave_in_flight(sql, account: int, *, expired: bool = False) -> int:
    """A row a dead worker of ``account`` marked in flight (its lease expired or not)."""
    [qid] = insert_emails(sql, 1, to_address="inflight@example.org")
    sql.execute(
        "UPDATE email_queue SET status = 'sending', locked_by = 'dead-worker', "
        "locked_account_id = %s, attempts = 1, attempt_started_at = now(), "
        "locked_until = now() + make_interval(secs => %s), "
        "message_id = '<inflight@example.org>' WHERE id = %s",
        (account, -60 if expired else 60, qid),
    )
    return qid


async def test_mark_fails_when_a_recovery_commits_while_it_waits(sql, db_url, settings):
    """Defect 1: the mark's lease guard must hold on the row version it changes."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
    [qid] = insert_emails(sql, 1)
    async with Database(db_url) as db:
        queue = QueueManager(db, "worker-1")
        [row] = await queue.claim_batch(
            account_id=account, pool="default", domain="example.com", limit=1, lease_seconds=60
        )
        with psycopg.connect(db_url) as recovery:  # a recovery, not yet committed
            recovery.execute(
                "UPDATE email_queue SET status = 'queued', locked_by = NULL, "
                "locked_account_id = NULL, locked_until = NULL WHERE id = %s",
                (qid,),
            )
            marking = asyncio.create_task(queue.record_results(account, [], [row.id], LIMITS))
            await asyncio.sleep(0.3)  # the mark now waits for the row lock
            assert not marking.done()
            recovery.commit()
        marked = await marking
    assert marked == ()
    [after] = rows_by_id(sql).values()
    assert (after["status"], after["attempts"], after["attempt_started_at"]) == ("queued", 0, None)


async def test_mark_fails_when_the_limits_changed_since_the_worker_read_them(sql, db_url):
    """Defect 10: a lowered limit is binding from its commit, whatever the worker knows."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, daily_limit=10_000)
    insert_emails(sql, 1)
    async with Database(db_url) as db:
        queue = QueueManager(db, "worker-1")
        [row] = await queue.claim_batch(
            account_id=account, pool="default", domain="example.com", limit=1, lease_seconds=60
        )
        sql.execute("UPDATE sender_accounts SET daily_limit = 618 WHERE id = %s", (account,))
        assert await queue.record_results(account, [], [row.id], LIMITS) == ()
        why = await queue.why_unmarked(account, row.id, LIMITS)
        assert (why.marked, why.account_changed) == (False, True)
        applied = Limits(daily_limit=618, hourly_limit=None, min_delay_ms=0)
        assert await queue.record_results(account, [], [row.id], applied) == (row.id,)


async def test_a_row_left_in_flight_counts_against_the_daily_limit_at_restart(
    sql, db_url, settings
):
    """Defect 2: the restarted worker's gate sees the predecessor's in-flight row."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, daily_limit=3)
        add_history(sql, account, [600, 300])
        leave_in_flight(sql, account)
        insert_emails(sql, 3)
        async with running_worker(settings, db_url, account):
            await hold(lambda: count_sent(sql) == 0, 2.0, "nothing sent over the limit")
        assert smtp.received == []


async def test_a_row_left_in_flight_paces_the_first_send_after_restart(sql, db_url, settings):
    """Defect 2: min_delay_ms holds across the restart too."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=2500)
        leave_in_flight(sql, account)
        insert_emails(sql, 1)
        async with running_worker(settings, db_url, account):
            await hold(lambda: count_sent(sql) == 0, 1.5, "no send within min_delay_ms")
            await wait_until(lambda: count_sent(sql) == 1, message="the row sent after the gap")


async def test_an_in_flight_row_recovered_after_start_counts_against_the_limit(
    sql, db_url, settings
):
    """Defect 2: a counted attempt the worker did not see at start (a recovery after it
    loaded its window) still reaches its limit gate."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, hourly_limit=2)
        add_history(sql, account, [60])
        async with running_worker(settings, db_url, account):
            leave_in_flight(sql, account, expired=True)
            await wait_until(
                lambda: any(log["outcome"] == "unknown" for log in send_logs(sql)),
                message="the heartbeat recovers the in-flight row",
            )
            insert_emails(sql, 3)
            await hold(lambda: count_sent(sql) == 0, 2.0, "nothing sent over the hourly limit")
        assert smtp.received == []


def journal_entries(home: Path, account: int, pid: int) -> list[dict]:
    """What the journal of the worker process ``pid`` says so far."""
    entries = []
    for path in (home / "journal" / str(account)).glob(f"*:{pid}:*.jsonl"):
        entries += [json.loads(line) for line in path.read_text().splitlines() if line]
    return entries


@pytest.mark.slow
async def test_a_poison_row_fails_after_three_worker_deaths_and_the_account_goes_on(
    sql, db_url, settings, tmp_path
):
    """Defect 3: a row that kills every worker preparing it fails alone."""
    loop_forever = "{% for a in range(99999) %}{% for b in range(99999) %}x{% endfor %}{% endfor %}"
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        [poison] = insert_emails(sql, 1, html_body=loop_forever, variables={"x": 1}, priority=9)
        ids = insert_emails(sql, 3)
        for death in range(settings.poison_threshold):
            log = tmp_path / f"worker{death}.log"
            with worker_process(settings, db_url, account, log) as proc:
                await wait_until(
                    lambda: (
                        {"k": "preparing", "id": poison}
                        in journal_entries(settings.home, account, proc.pid)
                    ),
                    message="the worker preparing the poison row",
                )
                proc.proc.kill()
                assert await proc.wait_exit() == -signal.SIGKILL
            assert rows_by_id(sql)[poison]["worker_crashes"] == death
        with worker_process(settings, db_url, account, tmp_path / "last.log"):
            await wait_until(lambda: count_sent(sql) == 3, message="the other rows sent")
    rows = rows_by_id(sql)
    assert rows[poison]["status"] == "failed"
    assert rows[poison]["worker_crashes"] == settings.poison_threshold
    assert "poison row: 3 workers died while preparing it" in rows[poison]["last_error"]
    assert all(rows[q]["status"] == "sent" for q in ids)
    assert sql.execute("SELECT status FROM sender_accounts").fetchone()["status"] == "active"


def cut_off(server_sql, dbname: str, allow: bool) -> None:
    """Refuse (or allow again) every connection to ``dbname``; end the open ones."""
    server_sql.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS {str(allow).lower()}')
    if not allow:
        server_sql.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )


async def test_a_database_outage_after_the_250_causes_no_resend(sql, db_url, server_url, settings):
    """Defect 7: the outcome survives in the journal and the next worker replays it."""
    settings = settings.with_overrides(db_outage_seconds=1.0, lease_seconds=2.0)
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        [qid] = insert_emails(sql, 1)
        smtp.delay_data(1.5)
        with psycopg.connect(server_url, autocommit=True) as admin:
            async with running_worker(settings, db_url, account) as worker:
                await wait_until(lambda: smtp_rules_left(smtp) == 0, message="DATA held")
                cut_off(admin, dbname, allow=False)  # also ends this test's `sql` session
                await wait_until(lambda: len(smtp.received) == 1, message="the 250")
            assert worker.exit_code_seen == 75  # type: ignore[attr-defined]
            await asyncio.sleep(settings.lease_seconds + 0.5)  # the lease has expired
            cut_off(admin, dbname, allow=True)
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as after:
            async with running_worker(settings, db_url, account):
                await wait_until(
                    lambda: statuses(after) == {"sent": 1}, message="the replayed outcome"
                )
                await asyncio.sleep(1.0)
            assert [log["outcome"] for log in send_logs(after)] == ["sent"]
            assert rows_by_id(after)[qid]["sent_at"] is not None
    assert len(smtp.received) == 1
