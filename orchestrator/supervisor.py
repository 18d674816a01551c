"""The orchestrator (``mailer run``): one ``mailer worker`` process per active account.

It reads ``sender_accounts`` when a NOTIFY on ``mailer_accounts`` says one changed (and
every ``orchestrator_poll_seconds`` in case one was missed), starts a worker for each
``active`` account that has none, and SIGTERMs the worker of an account that is no longer
active. When a worker exits, :func:`orchestrator.policy.decide_after_exit` says what that
means: a clean stop, a lock held elsewhere (another host runs the account; try again
later, or as soon as the lock is seen free), a database outage or a kill by a signal
(restart with capped backoff; never the account's fault) or a crash of the worker's own
(exit code 1: restart with backoff; ``max_crashes_per_hour`` within an hour suspend the
account with the reason).

Several orchestrators, on several hosts, may point at one database: they split the
accounts by count (:mod:`orchestrator.placement`), and the account's advisory lock still
decides which one sends for an account: an orchestrator that finds it held starts no
worker for it (retrying when it is seen free).
On SIGTERM (``request_stop``) it SIGTERMs every worker at once, gives them
``shutdown_grace_seconds`` + 5 s to finish their message in flight, SIGKILLs the
stragglers and returns 0.

It holds three database connections: one LISTENing, one holding every worker's account
lock (:mod:`orchestrator.account_locks`: taken before a worker starts, released after it
is reaped) and one (a pool of one) for queries. Its workers neither LISTEN nor hold a lock
session: it relays ``mailer_queue`` NOTIFYs to all of them as SIGUSR1 and an account's
``mailer_accounts`` NOTIFY to its worker as SIGUSR2. Idle workers neither beat nor poll:
it proves them alive and wakes those with rows due (:mod:`orchestrator.idle_workers`).
If the database goes away it keeps its workers running and reconnects with backoff,
unless the lock session was lost: then the locks are gone and it SIGKILLs every worker
before it takes any lock again.

Workers are forked from a preloaded template (:mod:`orchestrator.forkserver`) unless
``MAILER_FORK_SERVER=0`` or a custom ``command`` is given; then each is a fresh
``mailer worker`` interpreter. Either way each is its own process the orchestrator reaps.

Beside the workers it keeps its companions running (:mod:`orchestrator.companion`):
``mailer run`` passes the bounce reader (``mailer bounces run``) unless
``MAILER_BOUNCE_READER=0``, the webhook sender (``mailer webhooks run``) unless
``MAILER_WEBHOOK_SENDER=0``, and the recurring-send scheduler (``mailer recurring run``)
unless ``MAILER_RECURRING_SCHEDULER=0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from mailer.config import Settings
from mailer.db import Database, connect_listener, wait_notifies
from mailer.lease import LeaseKeeper
from orchestrator.account_locks import AccountLocks
from orchestrator.companion import (
    Companion,
    bounce_reader_command,
    recurring_scheduler_command,
    webhook_sender_command,
)
from orchestrator.forkserver import ForkedProcess, ForkServer, worker_preexec
from orchestrator.forkserver import supported as fork_server_supported
from orchestrator.idle_workers import IdleWorkerDuties
from orchestrator.placement import HostIdentity, HostPlacement
from orchestrator.policy import (
    ExitKind,
    decide_after_exit,
    describe_exit,
    locked_retry_delay,
    restart_delay,
)

log = logging.getLogger("mailer.orchestrator")

#: A SIGTERMed worker gets ``shutdown_grace_seconds`` plus this long before SIGKILL.
KILL_MARGIN_SECONDS = 5.0
#: Longest wait between two attempts to reach the database.
RECONNECT_MAX_SECONDS = 5.0
#: How often the orchestrator forgets ``workers`` rows whose heartbeat stopped long ago.
STALE_WORKERS_EVERY_SECONDS = 60.0
#: Workers started together: their locks in one statement, their forks in one request
#: to the template (a fleet of 1,000 starts in 20 round trips, not 2,000).
SPAWN_BATCH = 50

WorkerCommand = Callable[[int], Sequence[str]]
Process = asyncio.subprocess.Process | ForkedProcess


def worker_command(account_id: int) -> list[str]:
    """The command line of one account's worker process."""
    return [sys.executable, "-m", "mailer", "worker", "--account-id", str(account_id)]


async def _uncancellable(future: asyncio.Future[Any]) -> None:
    """Wait for ``future`` even if the waiting task is cancelled meanwhile (a stop that
    ``mailer run`` cancels after the grace period must still finish)."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(future)


def default_companions(settings: Settings) -> list[tuple[str, list[str]]]:
    """What ``mailer run`` keeps running beside the workers."""
    companions = []
    if settings.bounce_reader:
        companions.append(("bounce reader", bounce_reader_command()))
    if settings.webhook_sender:
        companions.append(("webhook sender", webhook_sender_command()))
    if settings.recurring_scheduler:
        companions.append(("recurring scheduler", recurring_scheduler_command()))
    return companions


@dataclass(eq=False)
class WorkerSlot:
    """One account's worker process (if any) and its restart state."""

    account_id: int
    active: bool = False
    process: Process | None = None
    started_at: float = 0.0
    stopping: bool = False
    #: Consecutive failures (backoff) and recent crash times (suspension), monotonic clock.
    failures: int = 0
    crash_times: tuple[float, ...] = ()
    #: Do not start a worker before this (monotonic) time...
    not_before: float = 0.0
    #: ...unless it waits for a lock held elsewhere and the lock is seen free.
    waiting_for_lock: bool = False
    #: ...or its worker exited because the database was unavailable and the orchestrator
    #: has just reached the database again.
    waiting_for_database: bool = False
    #: The reason to write when the account is to be suspended (until it is written).
    pending_suspension: str | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def running(self) -> bool:
        return self.process is not None


class Orchestrator:
    """Runs one worker process per active account. ``await run()`` returns the exit code."""

    #: See :data:`KILL_MARGIN_SECONDS`.
    kill_margin_seconds = KILL_MARGIN_SECONDS

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        *,
        command: WorkerCommand = worker_command,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        companions: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> None:
        self.settings = settings
        self.url = database_url
        self.command = command
        self.clock = clock
        self.rand = rand
        self.hostname = socket.gethostname()
        # Many hosts: which accounts this orchestrator runs (orchestrator/placement.py).
        self.placement = HostPlacement(HostIdentity.from_settings(settings))
        self.slots: dict[int, WorkerSlot] = {}
        self.stopping = False
        self.wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._exits: list[tuple[WorkerSlot, Process, int]] = []
        self._forget_pids: list[int] = []
        #: Every worker's account lock, on one session (see orchestrator.account_locks);
        #: accounts whose worker was reaped, to release.
        self.locks = AccountLocks(database_url)
        self._unlock: list[int] = []
        self._next_stale_cleanup = 0.0
        self._db_failures = 0
        patience = settings.shutdown_grace_seconds + self.kill_margin_seconds
        self.companions = [
            Companion(name, argv, self._child_env, patience=patience, clock=clock)
            for name, argv in companions
        ]
        self.idle = IdleWorkerDuties(
            self.hostname, settings.poll_seconds / 2, clock, self._signal_accounts
        )
        self.forkserver: ForkServer | None = None
        if settings.fork_server and command is worker_command and fork_server_supported():
            self.forkserver = ForkServer(self._child_env)

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> int:
        """Supervise workers until ``request_stop``; then stop them all and return 0."""
        log.info("orchestrator starting on %s (pid %s)", self.hostname, os.getpid())
        supervise = asyncio.create_task(self._supervise(), name="orchestrator-supervise")
        stopped = asyncio.create_task(self._stop_requested.wait(), name="orchestrator-stop")
        companions = [asyncio.create_task(c.run(), name=c.name) for c in self.companions]
        if self.forkserver is not None:  # it preloads while the supervisor connects
            companions.append(asyncio.create_task(self.forkserver.start()))
        try:
            await asyncio.wait({supervise, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (supervise, stopped):
                task.cancel()
            results = await asyncio.gather(supervise, stopped, return_exceptions=True)
            stops = [asyncio.create_task(c.stop()) for c in self.companions]
            await self._stop_all()
            await _uncancellable(asyncio.ensure_future(self.locks.close()))  # workers reaped
            await self.placement.leave(self.url)  # many hosts: hand back its accounts
            await _uncancellable(asyncio.gather(*stops, *companions, return_exceptions=True))
            if self.forkserver is not None:
                await _uncancellable(asyncio.ensure_future(self.forkserver.close()))
        error = results[0]
        if isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
            raise error
        log.info("orchestrator stopped")
        return 0

    @property
    def stop_timeout(self) -> float:
        """How long a stop may take: every worker's grace period plus the kill margin."""
        return self.settings.shutdown_grace_seconds + self.kill_margin_seconds + 1

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop every worker (SIGTERM, then SIGKILL after the grace period) and return."""
        if not self.stopping:
            log.info("orchestrator stopping: %s", reason)
        self.stopping = True
        self._stop_requested.set()
        self.wake.set()

    async def _stop_all(self) -> None:
        """Stop every worker in parallel. Survives being cancelled (``mailer run`` cancels
        after ``shutdown_grace_seconds``): workers get their full grace period anyway."""
        stops = [
            asyncio.create_task(self._terminate(slot, slot.process, "orchestrator stopping"))
            for slot in self.slots.values()
            if slot.process is not None
        ]
        everything = asyncio.gather(*stops, return_exceptions=True)
        while not everything.done():
            try:
                await asyncio.shield(everything)
            except asyncio.CancelledError:
                log.warning(
                    "still waiting for workers to exit (up to %.0fs each)",
                    self.settings.shutdown_grace_seconds + self.kill_margin_seconds,
                )
        tasks = [task for slot in self.slots.values() for task in slot.tasks]
        if tasks:  # exit watchers: every process has exited by now
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for slot, process, returncode in self._exits:
            log.info(
                "worker for account %s (pid %s) stopped with %s",
                slot.account_id,
                process.pid,
                describe_exit(returncode),
            )
        self._exits.clear()

    @staticmethod
    async def _cancel_tasks(slot: WorkerSlot) -> None:
        tasks = list(slot.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the supervision loop ------------------------------------------------------------

    async def _supervise(self) -> None:
        """Stay connected to the database (reconnecting with backoff) and supervise."""
        while not self.stopping:
            try:
                await self._supervise_connected()
            except psycopg.OperationalError as exc:
                await self._lock_session_check()
                self._db_failures += 1
                delay = restart_delay(self._db_failures, cap=RECONNECT_MAX_SECONDS)
                running = sum(slot.running for slot in self.slots.values())
                log.error(
                    "database unavailable (%s); %sreconnecting in %.0fs",
                    " ".join(str(exc).split()) or type(exc).__name__,
                    f"{running} workers keep running; " if running else "",
                    delay,
                )
                deadline = self.clock() + delay
                while not self.stopping and self.clock() < deadline:
                    self.wake.clear()
                    self._handle_exits()  # bookkeeping only; restarts wait for the database
                    await self._sleep(deadline - self.clock())

    async def _supervise_connected(self) -> None:
        listener = await connect_listener(self.url, ["mailer_accounts", "mailer_queue"])
        try:
            async with Database(self.url) as db:
                self._database_is_back()
                listen = asyncio.create_task(self._listen(listener), name="orchestrator-listen")
                try:
                    while not self.stopping:
                        self.wake.clear()
                        if listen.done():
                            listen.result()  # raises the listener's connection error
                            raise psycopg.OperationalError("the LISTEN connection ended")
                        self._handle_exits()
                        await self._release_reaped()
                        await self._apply_pending(db)
                        await self._reconcile(db)
                        await self._forget_stale_workers(db)
                        await self.idle.run(db, self._running_pids)
                        self._db_failures = 0
                        await self._sleep(self._next_timeout())
                finally:
                    listen.cancel()
                    await asyncio.gather(listen, return_exceptions=True)
        finally:
            await listener.close()

    def _database_is_back(self) -> None:
        """Workers that exited because the database was away start again now, not after
        the backoff they accumulated during the outage."""
        for slot in self.slots.values():
            if slot.waiting_for_database:
                slot.waiting_for_database = False
                slot.failures, slot.not_before = 0, 0.0

    async def _listen(self, listener: psycopg.AsyncConnection) -> None:
        """Wake the loop when an account changed; relay NOTIFYs to the workers, which do
        not LISTEN themselves: SIGUSR1 (new mail) to all, SIGUSR2 to a changed account's."""
        try:
            while True:  # wakes only when a notification arrives (see wait_notifies)
                notes = await wait_notifies(listener)
                if any(note.channel == "mailer_queue" for note in notes):
                    self._signal_workers(self.slots.values(), signal.SIGUSR1)
                changed = {n.payload for n in notes if n.channel == "mailer_accounts"}
                if changed:
                    log.debug("accounts %s changed", ", ".join(sorted(changed)))
                    self._signal_workers(
                        [s for s in self.slots.values() if str(s.account_id) in changed],
                        signal.SIGUSR2,
                    )
                    self.wake.set()
        finally:
            self.wake.set()  # the connection is gone: let the loop notice

    def _running_pids(self) -> dict[int, int]:
        """Account id -> pid of every worker running now."""
        return {
            slot.account_id: slot.process.pid
            for slot in self.slots.values()
            if slot.process is not None and slot.process.returncode is None
        }

    def _signal_accounts(self, account_ids: Iterable[int], sig: int) -> None:
        wanted = set(account_ids)
        self._signal_workers((s for s in self.slots.values() if s.account_id in wanted), sig)

    @staticmethod
    def _signal_workers(slots: Iterable[WorkerSlot], sig: int) -> None:
        for slot in slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(sig)

    # -- the account locks ---------------------------------------------------------------

    def _locked_elsewhere(self, slot: WorkerSlot) -> None:
        """Another host (or a standalone worker) holds the account's lock: retry when it
        is seen free or later."""
        slot.waiting_for_lock = True
        slot.not_before = self.clock() + locked_retry_delay(self.rand())
        log.info(
            "account %s not started: another worker holds the account's lock; retrying "
            "when it is free or in %.0fs",
            slot.account_id,
            slot.not_before - self.clock(),
        )

    async def _release_reaped(self) -> None:
        """Release the locks of reaped workers (unless the account runs again already)."""
        await self.locks.check()  # raises if the session holding the locks was lost
        while self._unlock:
            account_id = self._unlock[0]
            slot = self.slots.get(account_id)
            if slot is None or not slot.running:
                await self.locks.release(account_id)
            self._unlock.pop(0)

    async def _lock_session_check(self) -> None:
        """After a database error: if the session holding the locks is gone, so are the
        locks: SIGKILL every worker before any lock can be taken again."""
        try:
            await asyncio.wait_for(self.locks.check(), timeout=5)
            return
        except (psycopg.Error, TimeoutError, OSError):
            pass
        running = [slot for slot in self.slots.values() if slot.process is not None]
        if running:
            log.error(
                "lost the session holding the account locks: killing %d workers", len(running)
            )
        for slot in running:
            slot.stopping = True  # restarted (no backoff) once the database is back
            with contextlib.suppress(ProcessLookupError):
                slot.process.kill()  # type: ignore[union-attr]
        await asyncio.gather(*(slot.process.wait() for slot in running))  # type: ignore[union-attr]
        await asyncio.sleep(0)  # let the exit watchers record the exits
        self._handle_exits()
        await self.locks.close()
        self._unlock.clear()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)

    def _next_timeout(self) -> float:
        timeout = self.settings.orchestrator_poll_seconds
        now = self.clock()
        for slot in self.slots.values():
            if slot.active and not slot.running and slot.pending_suspension is None:
                timeout = min(timeout, slot.not_before - now)
        return max(timeout, 0.01)

    # -- reacting to accounts ------------------------------------------------------------

    async def _reconcile(self, db: Database) -> None:
        """Make the running workers match the accounts: stop, start, restart when due."""
        statuses = {row["id"]: row["status"] for row in await db.fetch_all("orchestrator_accounts")}
        # Many hosts: accounts placed on another host count as not active here.
        running = {account_id for account_id, slot in self.slots.items() if slot.running}
        statuses = await self.placement.restrict(db, statuses, running)
        for account_id, slot in list(self.slots.items()):
            status = statuses.get(account_id)
            slot.active = status == "active"
            if slot.active:
                continue
            if slot.running and not slot.stopping:
                why = "account deleted" if status is None else f"account is {status}"
                self._stop_worker(slot, why)
            elif not slot.running:
                if status is None:
                    await self._cancel_tasks(slot)
                    del self.slots[account_id]
                else:  # an admin's resume starts it at once
                    slot.failures, slot.not_before, slot.waiting_for_lock = 0, 0.0, False
        now = self.clock()
        held: set[int] | None = None
        startable: list[WorkerSlot] = []
        for account_id, status in statuses.items():
            if status != "active":
                continue
            slot = self.slots.get(account_id)
            if slot is None:
                slot = self.slots[account_id] = WorkerSlot(account_id, active=True)
            if slot.running or slot.pending_suspension is not None:
                continue
            if now < slot.not_before:
                if not slot.waiting_for_lock:
                    continue
                if held is None:
                    held = {
                        row["account_id"]
                        for row in await db.fetch_all("orchestrator_held_account_locks")
                    }
                if account_id in held:
                    continue
                log.info("account %s's lock is free again; taking over", account_id)
            startable.append(slot)
        for start in range(0, len(startable), SPAWN_BATCH):
            await self._start_batch(startable[start : start + SPAWN_BATCH])

    async def _start_batch(self, slots: list[WorkerSlot]) -> None:
        """Take the accounts' locks (one statement) and start the workers of those taken
        (one request to the fork server)."""
        taken = await self.locks.take([slot.account_id for slot in slots])
        ready = [slot for slot in slots if slot.account_id in taken]
        for slot in slots:
            if slot.account_id not in taken:
                self._locked_elsewhere(slot)
        started = await self._start_processes([slot.account_id for slot in ready])
        for slot in ready:
            self._spawned(slot, started[slot.account_id])

    async def _start_processes(self, account_ids: list[int]) -> dict[int, Process | OSError]:
        """Account id -> its new worker process, or why it could not start."""
        if not account_ids:
            return {}
        if self.forkserver is not None:
            return dict(await self.forkserver.spawn(account_ids))
        started: dict[int, Process | OSError] = {}
        for account_id in account_ids:
            try:
                started[account_id] = await asyncio.create_subprocess_exec(
                    *self.command(account_id),
                    env=self._child_env(),
                    stdin=asyncio.subprocess.DEVNULL,
                    preexec_fn=worker_preexec,  # a worker whose orchestrator died stops at once
                )
            except OSError as exc:
                started[account_id] = exc
        return started

    def _spawned(self, slot: WorkerSlot, process: Process | OSError) -> None:
        if isinstance(process, OSError):
            exc = process
            slot.failures += 1
            delay = restart_delay(slot.failures)
            slot.not_before = self.clock() + delay
            log.error(
                "cannot start the worker for account %s (%s); retrying in %.0fs",
                slot.account_id,
                exc,
                delay,
            )
            return
        slot.process = process
        slot.started_at = self.clock()
        slot.stopping = False
        slot.waiting_for_lock = False
        self._track(slot, self._watch(slot, process))
        log.info("started worker for account %s (pid %s)", slot.account_id, process.pid)

    def _child_env(self) -> dict[str, str]:
        """The orchestrator's environment, plus the resolved database URL (so workers never
        start an embedded server of their own), the workers' query URL (PgBouncer) and its
        logging settings."""
        env = dict(os.environ)
        env["DATABASE_URL"] = self.url
        env["MAILER_WORKER_DATABASE_URL"] = self.settings.worker_database_url
        env["MAILER_WORKER_PREPARED_STATEMENTS"] = self.settings.worker_prepared_statements
        env["MAILER_LOG_FORMAT"] = self.settings.log_format
        env["MAILER_LOG_LEVEL"] = self.settings.log_level
        env["MAILER_LOCK_HELD_BY_PARENT"] = "1"  # the orchestrator holds its workers' locks
        return env

    def _track(self, slot: WorkerSlot, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        slot.tasks.add(task)
        task.add_done_callback(slot.tasks.discard)

    async def _watch(self, slot: WorkerSlot, process: Process) -> None:
        returncode = await process.wait()
        self._exits.append((slot, process, returncode))
        self.wake.set()

    # -- stopping workers ----------------------------------------------------------------

    def _stop_worker(self, slot: WorkerSlot, reason: str) -> None:
        """SIGTERM the slot's worker in the background (SIGKILL after the grace period)."""
        if slot.process is None or slot.stopping:
            return
        self._track(slot, self._terminate(slot, slot.process, reason))

    async def _terminate(self, slot: WorkerSlot, process: Process | None, reason: str) -> None:
        if process is None or process.returncode is not None:
            return
        slot.stopping = True
        log.info(
            "stopping worker for account %s (pid %s): %s", slot.account_id, process.pid, reason
        )
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        patience = self.settings.shutdown_grace_seconds + self.kill_margin_seconds
        try:
            await asyncio.wait_for(process.wait(), timeout=patience)
        except TimeoutError:
            log.warning(
                "worker for account %s (pid %s) did not stop within %.0fs; killing it",
                slot.account_id,
                process.pid,
                patience,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    # -- reacting to exits ---------------------------------------------------------------

    def _handle_exits(self) -> None:
        """Apply the policy to every worker that exited since the last pass."""
        exits, self._exits = self._exits, []
        for slot, process, returncode in exits:
            self._handle_exit(slot, process, returncode)

    def _handle_exit(self, slot: WorkerSlot, process: Process, returncode: int) -> None:
        now = self.clock()
        decision = decide_after_exit(
            returncode,
            now=now,
            ran_seconds=now - slot.started_at,
            failures=slot.failures,
            crash_times=slot.crash_times,
            max_crashes_per_hour=self.settings.max_crashes_per_hour,
            rand=self.rand(),
            stopping=slot.stopping,
        )
        was_stopping = slot.stopping
        slot.process = None
        slot.stopping = False
        slot.failures = decision.failures
        slot.crash_times = decision.crash_times
        slot.waiting_for_lock = decision.waits_for_lock
        self._unlock.append(slot.account_id)  # reaped: its lock can go
        account, pid, how = slot.account_id, process.pid, describe_exit(returncode)
        if returncode != 0 and decision.kind is not ExitKind.LOCKED:
            self._forget_pids.append(pid)  # it could not unregister itself
        if decision.restart_in is None:
            slot.pending_suspension = decision.suspend_reason
            log.error(
                "worker for account %s (pid %s) crashed with %s; suspending the account",
                account,
                pid,
                how,
            )
            return
        slot.not_before = now + decision.restart_in
        slot.waiting_for_database = decision.kind is ExitKind.DB_UNAVAILABLE
        if decision.kind is ExitKind.CLEAN:
            if was_stopping or not slot.active:
                log.info("worker for account %s (pid %s) stopped with %s", account, pid, how)
            else:
                log.info(
                    "worker for account %s (pid %s) stopped with %s; restarting in "
                    "%.1fs if the account is still active",
                    account,
                    pid,
                    how,
                    decision.restart_in,
                )
        elif decision.kind is ExitKind.LOCKED:
            log.info(
                "worker for account %s (pid %s) exited with %s: another worker holds "
                "the account's lock; retrying when it is free or in %.0fs",
                account,
                pid,
                how,
                decision.restart_in,
            )
        elif decision.kind is ExitKind.KILLED:
            log.warning(
                "worker for account %s (pid %s) was killed (%s), not the account's fault; "
                "restarting in %.0fs",
                account,
                pid,
                how,
                decision.restart_in,
            )
        elif decision.kind is ExitKind.DB_UNAVAILABLE:
            log.warning(
                "worker for account %s (pid %s) exited with %s: database "
                "unavailable; restarting in %.0fs",
                account,
                pid,
                how,
                decision.restart_in,
            )
        else:
            log.error(
                "worker for account %s (pid %s) crashed with %s (%d within the hour); "
                "restarting in %.0fs",
                account,
                pid,
                how,
                len(decision.crash_times),
                decision.restart_in,
            )

    async def _apply_pending(self, db: Database) -> None:
        """Database writes exits call for; kept until they succeed."""
        while self._forget_pids:
            await db.execute(
                "orchestrator_forget_worker",
                {"hostname": self.hostname, "pid": self._forget_pids[0]},
            )
            self._forget_pids.pop(0)
        for slot in self.slots.values():
            if slot.pending_suspension is not None:
                changed = await db.execute(
                    "suspend_account",
                    {"account_id": slot.account_id, "reason": slot.pending_suspension},
                )
                if changed:
                    log.error("account %s %s", slot.account_id, slot.pending_suspension)
                else:
                    log.info("account %s is no longer active; not suspending it", slot.account_id)
                slot.pending_suspension = None
                slot.active = False

    async def _forget_stale_workers(self, db: Database) -> None:
        """Housekeeping every STALE_WORKERS_EVERY_SECONDS: stale ``workers`` rows and
        expired leases."""
        now = self.clock()
        if now >= self._next_stale_cleanup:
            self._next_stale_cleanup = now + STALE_WORKERS_EVERY_SECONDS
            await db.execute("forget_stale_workers")
            await db.execute("ensure_partitions")  # retention at scale: days ahead exist
            # Rows of accounts with no live worker (suspended, paused mid-send) would
            # otherwise stay 'sending' until some worker of their pool comes by.
            # Dead workers' journals on this host are replayed first: an outcome that
            # reached only the journal must not be sent again.
            keeper = LeaseKeeper(
                db, "orchestrator", self.settings.home, self.settings.poison_threshold
            )
            await keeper.recover_expired_leases()
