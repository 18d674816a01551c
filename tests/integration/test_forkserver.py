"""Workers forked from the preloaded template (orchestrator/forkserver.py): still one OS
process per account that the orchestrator reaps, restarts and takes down with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.test_orchestrator import (
    child_env,
    one_worker,
    orchestrator,
    parent_of,
    workers,
)
from tests.support.mailer_env import add_account, insert_emails, statuses, wait_until
from tests.support.smtp_server import ScriptedSMTPServer


def cmdline(pid: int) -> list[str]:
    """A process's arguments (a forked worker's title is one string; split it)."""
    return " ".join(psutil.Process(pid).cmdline()).split()


def template_pids(orchestrator_pid: int) -> list[int]:
    """The fork server's template processes among the orchestrator's children."""
    return [
        p.pid
        for p in psutil.Process(orchestrator_pid).children()
        if "orchestrator.forkserver" in " ".join(p.cmdline())
    ]


@pytest.mark.slow
async def test_forked_workers_send_restart_within_two_seconds_and_die_with_the_orchestrator(
    sql, db_url, tmp_path: Path
):
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@example.com")
        b = add_account(sql, smtp, email="b@example.com", pool="other")
        env = child_env(db_url, tmp_path, MAILER_BOUNCE_READER="0", MAILER_WEBHOOK_SENDER="0")
        with orchestrator(env, tmp_path / "orch.log") as orch:
            pid_a = await one_worker(sql, a, parent=orch.pid, timeout=30)
            pid_b = await one_worker(sql, b, parent=orch.pid)
            assert len(template_pids(orch.pid)) == 1
            assert cmdline(pid_a)[-2:] == ["--account-id", str(a)]
            insert_emails(sql, 5, account_id=a)
            await wait_until(lambda: statuses(sql) == {"sent": 5}, message="5 rows sent")

            killed = time.monotonic()
            os.kill(pid_a, signal.SIGKILL)
            pid_a = await one_worker(sql, a, parent=orch.pid, not_pid=pid_a)
            assert time.monotonic() - killed < 2.5, "a killed worker is back within 2 s"
            killed = time.monotonic()  # forked alone too: its middle process may be gone
            os.kill(pid_b, signal.SIGKILL)  # before it looks (it must not wait then)
            pid_b = await one_worker(sql, b, parent=orch.pid, not_pid=pid_b)
            assert time.monotonic() - killed < 2.5, "a killed worker is back within 2 s"
            assert "was killed (exit code -9 (SIGKILL))" in orch.log

            # A dead template is started again; the workers it forked carry on.
            [template] = template_pids(orch.pid)
            os.kill(template, signal.SIGKILL)
            os.kill(pid_a, signal.SIGKILL)
            pid_a = await one_worker(sql, a, parent=orch.pid, not_pid=pid_a, timeout=30)
            assert parent_of(pid_b) == orch.pid
            insert_emails(sql, 3, account_id=a, to_address=lambda i: f"late{i}@example.org")
            await wait_until(lambda: statuses(sql) == {"sent": 8}, message="8 rows sent")

            os.kill(orch.pid, signal.SIGKILL)  # PR_SET_PDEATHSIG: the workers stop too
            await wait_until(
                lambda: parent_of(pid_a) is None and parent_of(pid_b) is None,
                timeout=15,
                message="workers to exit with their orchestrator",
            )
    assert len(smtp.received) == 8


@pytest.mark.slow
async def test_fork_server_off_spawns_fresh_worker_interpreters(sql, db_url, tmp_path: Path):
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@example.com")
        env = child_env(
            db_url,
            tmp_path,
            MAILER_FORK_SERVER="0",
            MAILER_BOUNCE_READER="0",
            MAILER_WEBHOOK_SENDER="0",
        )
        with orchestrator(env, tmp_path / "orch.log") as orch:
            pid = await one_worker(sql, a, parent=orch.pid, timeout=30)
            assert template_pids(orch.pid) == []
            assert cmdline(pid)[-4:] == ["mailer", "worker", "--account-id", str(a)]
            insert_emails(sql, 2, account_id=a)
            await wait_until(lambda: statuses(sql) == {"sent": 2}, message="2 rows sent")
            assert orch.terminate() == 0
    assert workers(sql) == {}
