"""The orchestrator for real: ``python -m mailer run`` as a child process spawning real
``mailer worker`` processes against a real PostgreSQL and a real SMTP server; the test acts
as an admin (UPDATEs ``sender_accounts``) and as an operator (signals)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest

from mailer.config import Settings
from orchestrator.supervisor import Orchestrator
from tests.support.mailer_env import add_account, insert_emails, statuses, wait_until
from tests.support.smtp_server import ScriptedSMTPServer

ROOT = Path(__file__).resolve().parents[2]


def child_env(db_url: str, home: Path, **overrides: str) -> dict[str, str]:
    """The environment of a ``mailer`` child process: this test's database, fast timings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MAILER_") and k != "DATABASE_URL"
    }
    env.update(
        {
            "DATABASE_URL": db_url,
            "MAILER_HOME": str(home),
            "MAILER_SECRET_KEY": "test-secret-key",
            "MAILER_HEARTBEAT_SECONDS": "0.3",
            "MAILER_POLL_SECONDS": "1",
            "MAILER_LEASE_SECONDS": "5",
            "MAILER_ORCHESTRATOR_POLL_SECONDS": "0.5",
            "MAILER_SHUTDOWN_GRACE_SECONDS": "5",
            "MAILER_SMTP_TIMEOUT_SECONDS": "5",
            "MAILER_RETRY_BASE_SECONDS": "0.2",
            "MAILER_RETRY_MAX_SECONDS": "1",
            "MAILER_ACCOUNT_BACKOFF_BASE_SECONDS": "0.5",
            "MAILER_ACCOUNT_BACKOFF_MAX_SECONDS": "2",
            "MAILER_LOG_LEVEL": "INFO",
        }
    )
    env.update(overrides)
    return env


class RunningOrchestrator:
    """``python -m mailer run`` in its own session (so a failed test can kill the whole
    process group, workers included); its log goes to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailer", "run"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, as supervisord would; return the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"orchestrator ignored SIGTERM:\n{self.log}") from None

    def close(self) -> None:
        """Kill whatever is left of its process group; reap; close the log."""
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()


@contextmanager
def orchestrator(env: dict[str, str], log_path: Path) -> Iterator[RunningOrchestrator]:
    running = RunningOrchestrator(env, log_path)
    try:
        yield running
    except BaseException:
        print(f"--- {log_path.name} ---\n{running.log}")
        raise
    finally:
        running.close()


def workers(sql: psycopg.Connection) -> dict[int, list[int]]:
    """Registered worker pids by account id."""
    found: dict[int, list[int]] = {}
    for row in sql.execute("SELECT account_id, pid FROM workers ORDER BY started_at"):
        found.setdefault(row["account_id"], []).append(row["pid"])
    return found


def parent_of(pid: int) -> int | None:
    """The parent pid of a live process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] == "Z" else int(fields[1])


def account(sql: psycopg.Connection, account_id: int) -> dict:
    return sql.execute("SELECT * FROM sender_accounts WHERE id = %s", [account_id]).fetchone()


async def one_worker(
    sql: psycopg.Connection,
    account_id: int,
    *,
    parent: int,
    not_pid: int | None = None,
    timeout: float = 5.0,
) -> int:
    """Wait until ``account_id`` has exactly one registered worker, a live child of
    ``parent`` (and not ``not_pid``); return its pid."""

    def ready() -> bool:
        pids = workers(sql).get(account_id, [])
        return len(pids) == 1 and pids[0] != not_pid and parent_of(pids[0]) == parent

    await wait_until(ready, timeout=timeout, message=f"a worker for account {account_id}")
    return workers(sql)[account_id][0]


@pytest.mark.slow
async def test_one_worker_per_account_sends_and_sigterm_stops_all_cleanly(sql, db_url, tmp_path):
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@example.com", min_delay_ms=100)
        b = add_account(sql, smtp, email="b@example.com", min_delay_ms=100)
        insert_emails(sql, 5, account_id=a, to_address=lambda i: f"a{i}@example.org")
        insert_emails(sql, 5, account_id=b, to_address=lambda i: f"b{i}@example.org")
        with orchestrator(child_env(db_url, tmp_path), tmp_path / "orch.log") as orch:
            await wait_until(lambda: statuses(sql) == {"sent": 10}, message="10 rows sent")
            pids = [
                await one_worker(sql, a, parent=orch.pid),
                await one_worker(sql, b, parent=orch.pid),
            ]
            # Keep both workers busy, then stop everything mid-batch.
            insert_emails(sql, 30, account_id=a, to_address=lambda i: f"a-more{i}@example.org")
            insert_emails(sql, 30, account_id=b, to_address=lambda i: f"b-more{i}@example.org")
            await wait_until(lambda: statuses(sql).get("sent", 0) >= 14, message="busy")
            started = time.monotonic()
            assert orch.terminate() == 0
            assert time.monotonic() - started < 10
        log = orch.log
    assert [parent_of(pid) for pid in pids] == [None, None], "workers outlived the orchestrator"
    assert workers(sql) == {}
    counts = statuses(sql)
    assert "sending" not in counts
    assert counts.get("sent", 0) + counts.get("queued", 0) == 70
    assert counts["queued"] > 0, "SIGTERM came after everything was sent: test too slow"
    assert len(smtp.received) == counts["sent"]
    assert "orchestrator stopped" in log
    assert log.count("stopped with exit code 0") == 2


@pytest.mark.slow
async def test_added_paused_and_resumed_accounts_within_five_seconds(sql, db_url, tmp_path):
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@example.com")
        with orchestrator(child_env(db_url, tmp_path), tmp_path / "orch.log") as orch:
            pid_a = await one_worker(sql, a, parent=orch.pid)

            b = add_account(sql, smtp, email="b@example.com")
            pid_b = await one_worker(sql, b, parent=orch.pid, timeout=5)
            insert_emails(sql, 3, account_id=b)
            await wait_until(lambda: statuses(sql) == {"sent": 3})

            sql.execute("UPDATE sender_accounts SET status = 'paused' WHERE id = %s", [b])
            await wait_until(
                lambda: b not in workers(sql) and parent_of(pid_b) is None,
                timeout=5,
                message="paused account's worker gone",
            )
            held = insert_emails(sql, 2, account_id=b, to_address=lambda i: f"held{i}@x.org")
            insert_emails(sql, 2, account_id=a, to_address=lambda i: f"a{i}@x.org")
            await wait_until(lambda: statuses(sql) == {"sent": 5, "queued": 2})
            assert workers(sql) == {a: [pid_a]}, "the other account's worker was touched"

            sql.execute("UPDATE sender_accounts SET status = 'active' WHERE id = %s", [b])
            await one_worker(sql, b, parent=orch.pid, not_pid=pid_b, timeout=5)
            await wait_until(lambda: statuses(sql) == {"sent": 7})
            sent_by = sql.execute(
                "SELECT DISTINCT sent_by_account_id FROM email_queue WHERE id = ANY(%s)", [held]
            ).fetchall()
            assert sent_by == [{"sent_by_account_id": b}]

            sql.execute("DELETE FROM sender_accounts WHERE id = %s", [a])
            await wait_until(
                lambda: a not in workers(sql) and parent_of(pid_a) is None,
                timeout=5,
                message="deleted account's worker gone",
            )
            assert orch.terminate() == 0


@pytest.mark.slow
async def test_killed_workers_restart_with_backoff_and_never_suspend_the_account(
    sql, db_url, tmp_path
):
    """Four SIGKILLs within seconds (an operator, the OOM killer) are not the account's
    fault: each restart waits longer (1, 2, 4, 8 s), the account stays active and its
    rows are all sent, once each."""
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@example.com", min_delay_ms=50)
        other = add_account(sql, smtp, email="other@example.com", pool="other")
        insert_emails(sql, 30, account_id=a)
        with orchestrator(child_env(db_url, tmp_path), tmp_path / "orch.log") as orch:
            other_pid = await one_worker(sql, other, parent=orch.pid)
            pid = await one_worker(sql, a, parent=orch.pid)
            await wait_until(lambda: statuses(sql).get("sent", 0) >= 3)
            for kill in range(4):
                os.kill(pid, signal.SIGKILL)
                pid = await one_worker(sql, a, parent=orch.pid, not_pid=pid, timeout=12)
                assert account(sql, a)["status"] == "active", f"after kill {kill + 1}"
            insert_emails(sql, 1, account_id=a, to_address="after@example.org")
            await wait_until(lambda: statuses(sql) == {"sent": 31}, timeout=20, message="all sent")
            sent = [m.rcpt_tos[0] for m in smtp.received]
            assert set(sent) == {f"user{i}@example.org" for i in range(30)} | {"after@example.org"}
            assert account(sql, a)["status"] == "active"
            assert account(sql, a)["last_error"] is None
            assert workers(sql) == {other: [other_pid], a: [pid]}, "killed workers forgotten"
            assert orch.terminate() == 0
        assert orch.log.count(f"started worker for account {a} ") == 5
        assert "restarting in 8s" in orch.log and "suspending" not in orch.log


@pytest.mark.slow
async def test_two_orchestrators_run_each_account_once_and_fail_over(sql, db_url, tmp_path):
    with ScriptedSMTPServer() as smtp:
        accounts = [
            add_account(sql, smtp, email=f"s{i}@example.com", min_delay_ms=20) for i in range(2)
        ]
        insert_emails(sql, 40)  # pool rows: either account may send each one
        env = child_env(db_url, tmp_path)
        with (
            orchestrator(env, tmp_path / "a.log") as first,
            orchestrator(env, tmp_path / "b.log") as second,
        ):
            parents = {first.pid, second.pid}

            def one_live_worker_each() -> bool:
                found = workers(sql)
                return (
                    sorted(found) == accounts
                    and all(len(p) == 1 for p in found.values())
                    and all(parent_of(p[0]) in parents for p in found.values())
                )

            await wait_until(one_live_worker_each, message="one worker per account")
            await wait_until(lambda: statuses(sql) == {"sent": 40})
            # The orchestrator takes the account's lock before starting a worker: the
            # second one finds it held and starts none.
            locked = "another worker holds the account's lock"
            await wait_until(
                lambda: (first.log + second.log).count(locked) >= 2,
                message="the second orchestrator finding each account's lock held",
            )
            assert one_live_worker_each()

            # Failover: the orchestrator running the first account's worker stops; the other
            # takes every account over (it sees the locks free, not after its 10-30 s retry).
            by_pid = {first.pid: first, second.pid: second}
            holder = by_pid.pop(parent_of(workers(sql)[accounts[0]][0]))
            [survivor] = by_pid.values()
            assert holder.terminate() == 0
            for account_id in accounts:
                await one_worker(sql, account_id, parent=survivor.pid, timeout=5)
            insert_emails(sql, 10, to_address=lambda i: f"late{i}@example.org")
            await wait_until(lambda: statuses(sql) == {"sent": 50})
            assert survivor.terminate() == 0
            assert "lock is free again; taking over" in survivor.log
    recipients = [m.rcpt_tos[0] for m in smtp.received]
    assert len(recipients) == 50 and len(set(recipients)) == 50, "a row was sent twice"
    assert workers(sql) == {}


class FastClock:
    """A monotonic clock running ``speed`` times faster than real time."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.start = time.monotonic()

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self.start) * self.speed


async def test_a_worker_crashing_by_itself_is_suspended_with_its_exit_code(sql, db_url, tmp_path):
    """The process plumbing in-process, with a stand-in worker that always exits 1 (a
    crash the real worker has no clean trigger for); backoff runs on a 10x clock."""
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@example.com")
    settings = Settings(
        home=tmp_path,
        orchestrator_poll_seconds=0.2,
        max_crashes_per_hour=3,
        shutdown_grace_seconds=2,
    )
    marker = tmp_path / "starts"
    script = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n'); sys.exit(1)"
    service = Orchestrator(
        settings,
        db_url,
        clock=FastClock(10),
        command=lambda account_id: [sys.executable, "-c", script, str(marker), str(account_id)],
    )
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: account(sql, a)["status"] == "suspended", timeout=10)
        assert account(sql, a)["last_error"] == (
            "suspended: worker crashed 3 times within an hour (last exit code 1)"
        )
        assert marker.read_text().split() == [str(a)] * 3
        connections = sql.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchone()["n"]
        assert connections <= 3, "the orchestrator holds at most 3 (LISTEN, locks, queries)"
    finally:
        service.request_stop("test finished")
        assert await asyncio.wait_for(task, timeout=10) == 0
    assert marker.read_text().split() == [str(a)] * 3, "restarted after suspension"


@pytest.mark.slow
async def test_survives_the_database_dropping_every_connection(sql, db_url, tmp_path):
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@example.com")
        with orchestrator(child_env(db_url, tmp_path), tmp_path / "orch.log") as orch:
            pid = await one_worker(sql, a, parent=orch.pid)
            sql.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await one_worker(sql, a, parent=orch.pid, not_pid=pid, timeout=10)
            insert_emails(sql, 3)
            await wait_until(lambda: statuses(sql) == {"sent": 3})
            assert orch.terminate() == 0
        log = orch.log
    assert "database unavailable" in log
    assert account(sql, a)["status"] == "active"


async def test_a_worker_ignoring_sigterm_is_killed_even_when_the_stop_is_cancelled(
    sql, db_url, tmp_path
):
    """``mailer run`` cancels the orchestrator after the grace period; the workers still get
    theirs plus the margin, then SIGKILL, and ``run()`` returns 0 only once they are gone."""
    with ScriptedSMTPServer() as smtp:
        add_account(sql, smtp, email="a@example.com")
    settings = Settings(home=tmp_path, orchestrator_poll_seconds=0.2, shutdown_grace_seconds=0.3)
    marker = tmp_path / "pid"
    script = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    )
    service = Orchestrator(
        settings, db_url, command=lambda account_id: [sys.executable, "-c", script, str(marker)]
    )
    service.kill_margin_seconds = 0.7
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: marker.exists() and marker.read_text() != "", timeout=10)
        pid = int(marker.read_text())
        started = time.monotonic()
        service.request_stop("test")
        await asyncio.sleep(0.1)
        task.cancel()  # what run_until_signalled does after the grace period
        assert await asyncio.wait_for(asyncio.shield(task), timeout=10) == 0
        assert 0.9 <= time.monotonic() - started < 5
        assert parent_of(pid) is None, "the worker outlived the orchestrator"
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
