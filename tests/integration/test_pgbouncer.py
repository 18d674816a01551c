"""PgBouncer (issue 12): ``mailer run`` with ``MAILER_WORKER_DATABASE_URL`` pointing at a
real PgBouncer in ``pool_mode = transaction`` (Debian's ``pgbouncer`` 1.18: no prepared
statements) sends every row exactly once within the limits, while PgBouncer holds no more
server connections than its pool size for more accounts than that, and the orchestrator
keeps its own session on ``DATABASE_URL``. A standalone worker keeps ``DATABASE_URL``;
``mailer run`` refuses a worker URL it cannot use, in one line.

Skipped, naming the package, where the ``pgbouncer`` binary is absent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.integration.test_connections import workers_only_env
from tests.integration.test_orchestrator import orchestrator
from tests.support.mailer_env import (
    add_account,
    hold,
    insert_emails,
    statuses,
    wait_until,
    worker_process,
)
from tests.support.pgbouncer import PGBOUNCER, SKIP_REASON, PoolSampler, pgbouncer
from tests.support.smtp_server import ScriptedSMTPServer
from tests.support.tracking_env import closed_port_url

POOL_SIZE = 2  # PgBouncer's server connections for the test database
ACCOUNTS = 6
ROWS = 12  # per account
DAILY_LIMITED = 5  # account 0 may send this many today
HOURLY_LIMITED = 4  # account 1 this many this hour


@pytest.mark.slow
@pytest.mark.skipif(PGBOUNCER is None, reason=SKIP_REASON)
@pytest.mark.parametrize("fork_server", ["1", "0"], ids=["forked", "spawned"])
async def test_workers_through_pgbouncer_send_each_row_once_within_limits_on_two_connections(
    sql, db_url, server_url, tmp_path: Path, fork_server: str
):
    """With psycopg's default prepared statements (``MAILER_WORKER_PREPARED_STATEMENTS=on``)
    the same run fails on PgBouncer 1.18: ``prepared statement "_pg3_0" already exists``."""
    dbname = conninfo_to_dict(db_url)["dbname"]
    with (
        ScriptedSMTPServer() as smtp,
        pgbouncer(server_url, pool_size=POOL_SIZE) as bouncer,
    ):
        limits = [{"daily_limit": DAILY_LIMITED}, {"hourly_limit": HOURLY_LIMITED}]
        limits += [{}] * (ACCOUNTS - len(limits))
        accounts = [
            add_account(sql, smtp, email=f"a{i}@example.com", pool=f"p{i}", **limit)
            for i, limit in enumerate(limits)
        ]
        for i, account in enumerate(accounts):
            insert_emails(
                sql, ROWS, account_id=account, to_address=lambda n, i=i: f"r{i}-{n}@x.org"
            )
        allowed = [DAILY_LIMITED, HOURLY_LIMITED] + [ROWS] * (ACCOUNTS - 2)
        env = workers_only_env(
            db_url,
            tmp_path,
            MAILER_WORKER_DATABASE_URL=bouncer.url(dbname),
            MAILER_FORK_SERVER=fork_server,
        )
        sampler = PoolSampler(bouncer, dbname, db_url)
        with sampler.running(), orchestrator(env, tmp_path / "orch.log") as orch:
            await wait_until(
                lambda: statuses(sql).get("sent") == sum(allowed), timeout=60, message="all sent"
            )
            # The limited accounts' rows stay queued: nothing more goes out.
            await hold(lambda: statuses(sql).get("sent") == sum(allowed), 2.0, "no overshoot")
            assert orch.terminate() == 0
        assert "Traceback" not in orch.log

    sent = sql.execute(
        "SELECT account_id, to_address FROM email_queue WHERE status = 'sent'"
    ).fetchall()
    by_account = Counter(row["account_id"] for row in sent)
    assert [by_account[a] for a in accounts] == allowed
    assert statuses(sql) == {"sent": sum(allowed), "queued": ACCOUNTS * ROWS - sum(allowed)}
    # What the sink got: each sent row exactly once, from its own account.
    received = Counter(
        (m.message["From"].addresses[0].addr_spec, str(m.message["To"])) for m in smtp.received
    )
    assert set(received.values()) == {1}
    senders = {a: f"a{i}@example.com" for i, a in enumerate(accounts)}
    assert set(received) == {(senders[r["account_id"]], r["to_address"]) for r in sent}

    # PgBouncer multiplexed more worker clients than server connections, never more than
    # its pool, and PostgreSQL saw the same; the workers' queries never went direct (what
    # is direct is the orchestrator's lock-and-LISTEN session, its queries and this test).
    assert sampler.samples > 50
    assert sampler.most_clients > POOL_SIZE
    assert 1 <= sampler.most_servers <= POOL_SIZE
    assert 1 <= sampler.most_backends <= POOL_SIZE
    assert sampler.most_direct <= 4
    print(
        f"pgbouncer: {ACCOUNTS} accounts, {sum(allowed)} sent, at most "
        f"{sampler.most_clients} clients on {sampler.most_servers} server connections "
        f"(PostgreSQL saw {sampler.most_backends}); direct backends at most "
        f"{sampler.most_direct}; {sampler.samples} samples"
    )


@pytest.mark.slow
@pytest.mark.skipif(PGBOUNCER is None, reason=SKIP_REASON)
async def test_pgbouncer_dropping_every_worker_connection_loses_no_row_and_blames_no_account(
    sql, db_url, server_url, tmp_path: Path
):
    """``KILL db`` on PgBouncer's console drops every client and server connection of the
    database mid-run (a PgBouncer restart, as the workers see it); ``RESUME`` lets them
    reconnect. Their queries wait in PgBouncer until it logs in to PostgreSQL again:
    with its default ``server_login_retry`` (15 s) the rest went out 16 s after RESUME,
    with the 1 s the README sets about 2 s after it."""
    dbname = conninfo_to_dict(db_url)["dbname"]
    rows = 30
    with ScriptedSMTPServer() as smtp, pgbouncer(server_url, pool_size=POOL_SIZE) as bouncer:
        accounts = [
            add_account(sql, smtp, email=f"a{i}@example.com", pool=f"p{i}", min_delay_ms=50)
            for i in range(4)
        ]
        for i, account in enumerate(accounts):
            insert_emails(
                sql, rows, account_id=account, to_address=lambda n, i=i: f"r{i}-{n}@x.org"
            )
        env = workers_only_env(db_url, tmp_path, MAILER_WORKER_DATABASE_URL=bouncer.url(dbname))
        with orchestrator(env, tmp_path / "orch.log") as orch, bouncer.admin() as admin:
            await wait_until(lambda: statuses(sql).get("sent", 0) >= 20, message="sending")
            admin.execute(f'KILL "{dbname}"')
            await asyncio.sleep(0.5)
            admin.execute(f'RESUME "{dbname}"')
            resumed = time.monotonic()
            await wait_until(
                lambda: statuses(sql) == {"sent": 4 * rows}, timeout=60, message="all sent"
            )
            after_resume = time.monotonic() - resumed
            assert orch.terminate() == 0
        assert "Traceback" not in orch.log
    received = Counter(str(m.message["To"]) for m in smtp.received)
    assert len(received) == 4 * rows and set(received.values()) == {1}
    states = sql.execute("SELECT status, last_error FROM sender_accounts").fetchall()
    assert {row["status"] for row in states} == {"active"}
    assert after_resume < 12, f"the rest was sent {after_resume:.1f} s after RESUME"


@pytest.mark.slow
async def test_a_standalone_worker_keeps_database_url_and_says_so(sql, db_url, settings, tmp_path):
    """It holds its own lock and LISTENs: the worker URL (here nothing listens there) is
    not for it."""
    settings = settings.with_overrides(worker_database_url=closed_port_url())
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        insert_emails(sql, 2, account_id=account)
        with worker_process(settings, db_url, account, tmp_path / "worker.log") as worker:
            await wait_until(lambda: statuses(sql) == {"sent": 2}, message="sent directly")
            worker.signal(signal.SIGTERM)
            assert await worker.wait_exit() == 0
        assert "it uses DATABASE_URL, not MAILER_WORKER_DATABASE_URL" in worker.stderr()
    assert len(smtp.received) == 2


def mailer_run_once(db_url: str, home: Path, worker_url: str) -> subprocess.CompletedProcess:
    """``mailer run`` with ``MAILER_WORKER_DATABASE_URL=worker_url``, expected to refuse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env |= {
        "DATABASE_URL": db_url,
        "MAILER_HOME": str(home),
        "MAILER_SECRET_KEY": "test-secret-key",
        "MAILER_WORKER_DATABASE_URL": worker_url,
        "MAILER_CONNECT_TIMEOUT_SECONDS": "2",
    }
    return subprocess.run(
        [sys.executable, "-m", "mailer", "run"], env=env, capture_output=True, text=True, timeout=60
    )


def test_mailer_run_refuses_an_unreachable_worker_database_url_in_one_line(db_url, tmp_path):
    done = mailer_run_once(db_url, tmp_path / "home", closed_port_url())
    assert done.returncode == 75  # as an unreachable DATABASE_URL
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: MAILER_WORKER_DATABASE_URL: cannot connect to the database")


def test_mailer_run_refuses_a_worker_database_url_without_the_schema(
    db_url, empty_db_url, tmp_path
):
    done = mailer_run_once(db_url, tmp_path / "home", empty_db_url)
    assert done.returncode == 75
    assert done.stderr.strip() == (
        "Error: MAILER_WORKER_DATABASE_URL: database has no Mailer schema "
        "(it must reach DATABASE_URL's database)"
    )
