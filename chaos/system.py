"""The system under test of one schedule: its database, one chaos SMTP server per account,
and Mailer's orchestrators (``python -m mailer run``) with the workers they spawn.

Engine timers are short (lease 5 s, heartbeat 0.5 s, retries from 0.2 s) so a schedule
of seconds sees leases expire, retries and recoveries. Every process started here is
remembered and killed by pid when the schedule ends, whatever happened to its parent.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import IO, Any

import psutil

from bench.env import MailerRun, Server, connect, package_queries
from chaos.history import Account
from chaos.schedule import Schedule
from chaos.smtp_servers import SMTPServerProcess

#: The engine's settings during a run (``MAILER_*``); see mailer/config.py.
ENGINE_ENV = {
    "MAILER_LEASE_SECONDS": "5",
    "MAILER_HEARTBEAT_SECONDS": "0.5",
    "MAILER_POLL_SECONDS": "1",
    "MAILER_RETRY_BASE_SECONDS": "0.2",
    "MAILER_RETRY_MAX_SECONDS": "2",
    "MAILER_ACCOUNT_BACKOFF_BASE_SECONDS": "0.5",
    "MAILER_ACCOUNT_BACKOFF_MAX_SECONDS": "3",
    "MAILER_SMTP_TIMEOUT_SECONDS": "3",
    "MAILER_MESSAGES_PER_CONNECTION": "15",
    "MAILER_SHUTDOWN_GRACE_SECONDS": "2",
    "MAILER_ORCHESTRATOR_POLL_SECONDS": "0.5",
    "MAILER_LOG_LEVEL": "INFO",
    # The companions (bounce reader, webhook sender, recurring scheduler) play no part in
    # what the checker verifies; on a 2-core machine they would only slow every restart.
    "MAILER_BOUNCE_READER": "0",
    "MAILER_WEBHOOK_SENDER": "0",
    "MAILER_RECURRING_SCHEDULER": "0",
}


def q(name: str) -> str:
    """A named statement of ``chaos/queries.sql``."""
    return package_queries("chaos")[name]


class System:
    """Servers, accounts, rows and orchestrators of one schedule on database ``url``."""

    def __init__(self, server: Server, url: str, workdir: Path) -> None:
        self.server = server
        self.url = url
        self.workdir = workdir
        self.log: IO[bytes] = (workdir / "mailer.log").open("ab")
        self.env = ENGINE_ENV | {"MAILER_HOME": str(workdir / "home")}
        self.smtp: list[SMTPServerProcess] = []
        self.account_ids: list[int] = []
        self.orchestrators: list[MailerRun] = []
        self._seen: dict[int, psutil.Process] = {}
        self._host_ids: dict[int, str] = {}  # MAILER_HOST_ID by orchestrator pid

    # -- setup ---------------------------------------------------------------------------

    def populate(self, schedule: Schedule) -> list[Account]:
        """Start one SMTP server per account, insert the accounts and the rows; return
        the accounts as inserted."""
        for spec in schedule.accounts:
            self.smtp.append(SMTPServerProcess(spec.email, self.record_path(spec.email)))
        with connect(self.url) as conn:
            for spec, smtp in zip(schedule.accounts, self.smtp, strict=True):
                params = {"host": smtp.host, "port": smtp.port, **vars(spec)}
                self.account_ids.append(conn.execute(q("insert_account"), params).fetchone()["id"])
            with conn.cursor() as cur, conn.transaction():
                cur.executemany(q("insert_row"), [self._row_params(r) for r in schedule.rows])
            return [Account(**r) for r in conn.execute(q("snapshot_accounts"))]

    def _row_params(self, row: Any) -> dict[str, Any]:
        account = None if row.account is None else self.account_ids[row.account]
        return {
            "to_address": row.to_address,
            "subject": f"Chaos {row.to_address}",
            "account_id": account,
            "due_in": row.due_in,
        }

    def record_path(self, email: str) -> Path:
        return self.workdir / f"deliveries-{email}.jsonl"

    # -- orchestrators and workers -------------------------------------------------------

    def start_orchestrator(self) -> MailerRun:
        # Each live orchestrator is a host of its own (they split the accounts); one
        # started after a kill comes back as the host it replaces.
        taken = {self._host_ids[run.proc.pid] for run in self.live_orchestrators()}
        host_id = next(f"chaos-{i}" for i in itertools.count() if f"chaos-{i}" not in taken)
        run = MailerRun(self.url, log=self.log, **self.env, MAILER_HOST_ID=host_id)
        self._host_ids[run.proc.pid] = host_id
        self.orchestrators.append(run)
        self._remember(run.process)
        return run

    def live_orchestrators(self) -> list[MailerRun]:
        return [run for run in self.orchestrators if run.proc.poll() is None]

    def workers(self, account: int | None = None) -> list[psutil.Process]:
        """Live workers of every live orchestrator (of one account index, if given)."""
        found = []
        for run in self.live_orchestrators():
            for process in run.workers():
                self._remember(process)
                if account is None or self._account_of(process) == self.account_ids[account]:
                    found.append(process)
        return found

    @staticmethod
    def _account_of(process: psutil.Process) -> int | None:
        with contextlib.suppress(psutil.Error, ValueError, IndexError):
            argv = " ".join(process.cmdline()).split()  # a forked worker's title is one string
            return int(argv[argv.index("--account-id") + 1])
        return None

    def _remember(self, process: psutil.Process) -> None:
        self._seen[process.pid] = process

    def stop_orchestrators(self) -> None:
        """SIGTERM every live orchestrator and wait (they stop their workers)."""
        for run in self.live_orchestrators():
            run.stop()

    def kill_leftovers(self) -> None:
        """SIGKILL (after SIGCONT) every process this run started that still runs."""
        for process in self._seen.values():
            with contextlib.suppress(psutil.Error):
                if process.is_running():
                    process.resume()
                    process.kill()
        for run in self.orchestrators:
            with contextlib.suppress(Exception):
                run.proc.wait(timeout=10)

    # -- teardown ----------------------------------------------------------------------

    def close(self) -> None:
        self.stop_orchestrators()
        self.kill_leftovers()
        for smtp in self.smtp:
            smtp.stop()
        self.log.close()
