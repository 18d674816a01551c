"""The worker: one process sending for one account, never over its limits.

It only sequences a row's path: claim (:mod:`mailer.queue`) -> render
(:mod:`mailer.render`) -> wait for the limit gate (:mod:`mailer.gate`) -> mark in flight
-> send (:mod:`mailer.senders`) -> record the outcome in the journal
(:mod:`mailer.journal`) and then the database. Leases and what dead predecessors left
are :mod:`mailer.lease`'s.

Life of a worker: take the account's cluster-wide advisory lock (or exit
:data:`EXIT_LOCKED`; under ``mailer run`` the orchestrator holds it, see
``Settings.lock_held_by_parent``), settle what a dead predecessor left (journal replay,
requeue), load the limit gate from what the database counts, then loop: claim a batch
(``FOR UPDATE SKIP LOCKED``), and for each row: connect if needed, wait for the gate, note
the row in the journal, render it, mark it in flight (the mark fails if the lease was
lost, the address suppressed, the account paused or its limits changed), send, and
journal the outcome before going on; outcomes reach the database in batches
(:mod:`mailer.outcomes`), and the next rows are marked while the current one is on the
wire when nothing can hold them back (:mod:`mailer.lookahead`). A crash can re-send at
most the row in flight. A heartbeat renews leases and re-reads the account so an
admin's ``UPDATE`` applies within seconds; LISTEN/NOTIFY (relayed by the orchestrator
as SIGUSR1/SIGUSR2) wakes an idle worker when rows arrive. SIGTERM stops claiming, lets
the message in flight finish (up to ``shutdown_grace_seconds``) and returns the rest of
the batch to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import signal
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from mailer.account_session import AccountSession
from mailer.config import Settings
from mailer.credentials import CredentialBox, secret_key
from mailer.db import Database, connect_listener, wait_notifies, worker_query_connection
from mailer.errors import AccountError, DeliveryError, InvalidMessageError
from mailer.feedback_headers import add_feedback_headers
from mailer.heartbeat import PARENT_IDLE_SECONDS, Heartbeat, spread
from mailer.journal import OutcomeJournal
from mailer.lease import LeaseKeeper
from mailer.lookahead import Lookahead
from mailer.models import QueuedEmail
from mailer.outcomes import OutcomeRecorder
from mailer.queue import AttemptResult, Mark, QueueManager
from mailer.render import PostRender, RenderedMessage, Renderer
from mailer.retry import decide
from mailer.senders import make_sender
from mailer.senders.holder import SenderFactory, SenderHolder
from mailer.sql_queries import query
from mailer.tokens import TokenCodec
from mailer.tracking_hooks import TrackingHooks
from mailer.traffic import Traffic
from mailer.verp import VerpCodec

log = logging.getLogger("mailer.worker")

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_LOCKED = 3  # another worker holds this account's lock
EXIT_DB_UNAVAILABLE = 75  # EX_TEMPFAIL: the database went away; not the account's fault

#: The worker's query connection closes after this long unused: an idle worker holds no
#: connection most of the time (and, with none open, schedules nothing: see
#: :mod:`mailer.on_demand`). A busy one keeps it.
QUERY_CONNECTION_IDLE_SECONDS = 5.0


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (less CPU per message than asyncio's own
    loop), else None (asyncio's)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Step(enum.Enum):
    """What became of a row handed to :meth:`Worker._process`."""

    DONE = "done"  # settled (outcome recorded, or left to its new lease holder)
    AGAIN = "again"  # not started: the account changed; ask the gate again
    STOP = "stop"  # the account cannot go on; give the rest of the batch back


def message_renderer(
    settings: Settings, secret: str, post_render: Iterable[PostRender] | None = None
) -> Renderer:
    """The renderer of a worker: ``post_render`` None means the tracking hooks (links,
    pixel, List-Unsubscribe) and the feedback headers (List-Id, Feedback-ID); the envelope
    sender is VERP-encoded."""
    tracking = TrackingHooks(settings, TokenCodec(secret))
    return Renderer(
        max_message_bytes=settings.max_message_bytes,
        variables=[tracking.variables],
        post_render=(
            [tracking.post_render, add_feedback_headers] if post_render is None else post_render
        ),
        reject_special_use_domains=settings.reject_special_use_domains,
        smtputf8=True,  # senders use SMTPUTF8 where offered, else fail the row clearly
        envelope_from=VerpCodec(secret).envelope_from,
    )


@dataclass(frozen=True)
class WorkerTools:
    """What a worker builds from its settings and secret alone: the same for every
    account."""

    renderer: Renderer
    box: CredentialBox


def worker_tools(
    settings: Settings, post_render: Iterable[PostRender] | None = None
) -> WorkerTools:
    """A worker's renderer (see :func:`message_renderer`) and credential box."""
    secret = secret_key(settings)
    return WorkerTools(message_renderer(settings, secret, post_render), CredentialBox(secret))


class Worker:
    """Sends for one account. ``await run()`` returns the process exit code."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        account_id: int,
        *,
        sender_factory: SenderFactory = make_sender,
        post_render: Iterable[PostRender] | None = None,
        tools: WorkerTools | None = None,
    ) -> None:
        """``post_render`` None means the tracking hooks (links, pixel, List-Unsubscribe)
        and the feedback headers (List-Id, Feedback-ID). ``tools``: the renderer and
        credential box, when built already for ``settings`` (the fork server's template
        builds them once for all its workers); ``post_render`` is then ignored."""
        self.settings = settings
        self.url = database_url  # a standalone worker's lock and LISTEN session
        #: Its queries: ``MAILER_WORKER_DATABASE_URL`` under ``mailer run`` (PgBouncer).
        self.query_url, self.prepare_threshold = worker_query_connection(settings, database_url)
        self.account_id = account_id
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.sender_factory = sender_factory
        tools = tools or worker_tools(settings, post_render)
        self.renderer, self.box = tools.renderer, tools.box
        self.journal = OutcomeJournal(
            settings.home, account_id, self.worker_id, settings.journal_fsync_seconds
        )
        self.wake = asyncio.Event()
        self.account_changed = asyncio.Event()
        self.stopping = False
        self.exit_code = EXIT_OK
        self.in_flight: int | None = None
        #: Addresses that hard-bounced in this run: later rows of a batch claimed before
        #: the suppression was written are not sent to them.
        self.bounced: set[str] = set()
        self.checked_email = ""
        self.leased = False  # holding claimed rows (the heartbeat renews their lease)
        self.predecessor_rows = True  # rows a dead worker of the account has in flight
        self.parent_pid = os.getppid()
        self.session: AccountSession
        self.heartbeat: Heartbeat

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> int:
        """Run until stopped; return the exit code (see module constants)."""
        if self.settings.lock_held_by_parent:
            return await self._run_under_parent()
        if self.settings.worker_database_url:
            log.info(
                "a standalone worker holds its own lock and LISTENs: it uses DATABASE_URL, "
                "not MAILER_WORKER_DATABASE_URL (that is for workers under `mailer run`)"
            )
        try:
            listener = await connect_listener(self.url, ["mailer_queue", "mailer_accounts"])
        except psycopg.OperationalError as exc:
            log.error("database unavailable: %s", exc)
            return EXIT_DB_UNAVAILABLE
        try:
            if not await self._take_lock(listener):
                return EXIT_LOCKED
            return await self._run_with_pool(listener)
        finally:
            await listener.close()

    async def _run_under_parent(self) -> int:
        """``mailer run`` holds the lock and relays NOTIFYs as signals (see
        :attr:`~mailer.config.Settings.lock_held_by_parent`); it kills this process at once
        if it loses the lock's session or dies."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, self.wake.set)
        loop.add_signal_handler(signal.SIGUSR2, self._account_notified)
        try:
            return await self._run_with_pool(None)
        finally:
            for sig in (signal.SIGUSR1, signal.SIGUSR2):  # a late one must not kill us
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)

    async def _run_with_pool(self, listener: psycopg.AsyncConnection | None) -> int:
        try:
            async with Database(
                self.query_url,
                on_demand_idle=QUERY_CONNECTION_IDLE_SECONDS,
                prepare_threshold=self.prepare_threshold,
            ) as db:
                return await self._run_locked(db, listener)
        except psycopg.OperationalError as exc:
            log.error("database unavailable: %s", exc)
            return EXIT_DB_UNAVAILABLE
        finally:
            self.journal.close()

    def _account_notified(self) -> None:
        self.account_changed.set()
        self.wake.set()

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop claiming; finish the message in flight; give the rest back."""
        if not self.stopping:
            log.info("worker for account %s stopping: %s", self.account_id, reason)
        self.stopping = True
        self.wake.set()

    async def _take_lock(self, listener: psycopg.AsyncConnection) -> bool:
        cur = await listener.execute(query("try_account_lock"), {"account_id": self.account_id})
        row = await cur.fetchone()
        if row and row["locked"]:
            return True
        cur = await listener.execute(query("account_lock_holder"), {"account_id": self.account_id})
        holder = await cur.fetchone()
        log.info(  # expected (a second host, a restart overlapping): not an error
            "account %s is already being sent by another worker (database backend pid %s); exiting",
            self.account_id,
            holder["pid"] if holder else "?",
        )
        return False

    async def _run_locked(self, db: Database, listener: psycopg.AsyncConnection | None) -> int:
        self.db = db
        self.queue = QueueManager(db, self.worker_id)
        self.outcomes = OutcomeRecorder(
            self.queue,
            self.journal,
            self.account_id,
            self.settings.db_outage_seconds,
            batch_size=self.settings.result_batch_size,
            flush_seconds=self.settings.result_flush_seconds,
        )
        self.leases = LeaseKeeper(
            db, self.worker_id, self.settings.home, self.settings.poison_threshold
        )
        self.session = AccountSession(db, self.account_id, self.settings)
        self.lookahead = Lookahead(
            self.session, self.journal, self.renderer, self.outcomes, self.queue
        )
        self.senders = SenderHolder(db, self.settings, self.box, self.sender_factory)
        not_running = await self.session.open(self.worker_id)
        if not_running:
            log.warning("account %s %s; worker not started", self.account_id, not_running)
            return EXIT_OK
        self.journal.open()
        self.traffic = Traffic(db, self.account_id)  # adaptive rates, server-wide storms
        await self.traffic.load()
        await self.leases.recover_account_rows(self.account_id)
        self.predecessor_rows = await self.leases.others_hold_rows(self.account_id)
        await self.session.load_gate(self.worker_id)
        await db.execute(
            "register_worker",
            {
                "worker_id": self.worker_id,
                "account_id": self.account_id,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
        account = self.session.account
        log.info(
            "worker %s sending for account %s <%s> (pool %s)",
            self.worker_id,
            account.id,
            account.email,
            account.pool,
        )
        return await self._serve(listener)

    async def _serve(self, listener: psycopg.AsyncConnection | None) -> int:
        self.heartbeat = self._heartbeat()
        background = [asyncio.create_task(self.heartbeat.run())]
        if listener is not None:
            background.append(asyncio.create_task(self._listen(listener)))
        try:
            await self._send_loop()
        finally:
            try:
                await self._stop_background(background)
            finally:
                await self._shutdown()
        return self.exit_code

    @staticmethod
    async def _stop_background(tasks: list[asyncio.Task[None]]) -> None:
        """Cancel the listener and heartbeat, insisting: a cancel that lands while a task
        waits for the pool's connection can be swallowed by the pool."""
        pending = {t for t in tasks if not t.done()}
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)

    async def _shutdown(self) -> None:
        try:
            await self._flush()
            # A send cut off mid-flight may have gone out: it stays leased so recovery
            # counts it against the limits.
            keep = [self.in_flight] if self.in_flight is not None else []
            released = await self.queue.release_all(keep=keep)
            if released:
                log.info("returned %d unsent rows to the queue", released)
            await self.db.execute("unregister_worker", {"worker_id": self.worker_id})
        finally:
            await self.senders.close()

    # -- background tasks ----------------------------------------------------------------

    async def _listen(self, listener: psycopg.AsyncConnection) -> None:
        try:
            while True:  # wakes only when a notification arrives (see wait_notifies)
                for note in await wait_notifies(listener):
                    if note.channel == "mailer_queue":
                        self.wake.set()
                    elif note.payload == str(self.account_id):
                        self._account_notified()
        except psycopg.OperationalError as exc:
            log.error("lost the connection holding account %s's lock: %s", self.account_id, exc)
            self.exit_code = EXIT_DB_UNAVAILABLE
            self.request_stop("lock connection lost")

    def _heartbeat(self) -> Heartbeat:
        return Heartbeat(
            settings=self.settings,
            worker_id=self.worker_id,
            session=self.session,
            leases=self.leases,
            journal=self.journal,
            holding=lambda: self.leased,
            refresh_account=self._refresh_account,
            stop=self.request_stop,
            stopping=lambda: self.stopping,
            parent_pid=self.parent_pid,
            under_parent=self.settings.lock_held_by_parent,
            predecessor_rows=self.predecessor_rows,
        )

    async def _refresh_account(self) -> None:
        """Re-read the account (an admin's UPDATE); called by the heartbeat and, through
        NOTIFY, before the next send after any change."""
        self.account_changed.clear()
        stop = await self.session.refresh()
        if stop:
            self.request_stop(stop)

    # -- sending -------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while not self.stopping:
            if self.account_changed.is_set():
                await self._refresh_account()
            wait = self.session.seconds_until_sendable()
            if wait > 0:
                await self._flush()
                await self._sleep(min(wait, self.settings.heartbeat_seconds))
                continue
            self.wake.clear()
            rows = await self.queue.claim_batch(
                account_id=self.account_id,
                pool=self.session.account.pool,
                domain=self.session.account.domain,
                limit=self.session.claim_size(),
                lease_seconds=self.settings.lease_seconds,
            )
            if rows:
                self.leased = True
                self.heartbeat.nudge()  # an idle heartbeat renews the new leases now
                try:
                    await self._send_batch(rows)
                finally:
                    self.leased = False
            else:
                await self._flush()
                await self._idle()

    async def _idle(self) -> None:
        """Wait for a NOTIFY, the next due row or a poll. A poll that finds nothing due
        costs one cheap query (next_due_at), not a claim. Under ``mailer run`` the
        orchestrator wakes the worker when rows become due (see
        :mod:`orchestrator.idle_workers`): its own poll is only a rare safety net."""
        poll = self.settings.poll_seconds
        if self.settings.lock_held_by_parent:
            poll = max(poll, PARENT_IDLE_SECONDS)
        while True:
            timeout = spread(poll, random.random())
            due = await self.queue.next_due_at(self.account_id, self.session.account.pool)
            if due is not None:
                timeout = min(timeout, max(due.timestamp() - self.session.now(), 0.01))
            if await self._sleep(timeout) or due is not None or self.stopping:
                return

    async def _pause(self, seconds: float) -> bool:
        """:meth:`_sleep` in the middle of a batch: buffered outcomes are written first
        unless the pause is short."""
        if seconds > 0.02:
            await self._flush()
        return await self._sleep(seconds)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, woken early by a NOTIFY, an account change or a stop request (then
        True)."""
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
            woken = True
        self.wake.clear()
        return woken

    async def _send_batch(self, rows: list[QueuedEmail]) -> None:
        pending = list(rows)
        try:
            while pending:
                if self.stopping or not await self._connected(pending[0]):
                    break
                if not await self._wait_for_slot():
                    break
                row = pending.pop(self.traffic.pick(pending, self.session.gate.limits))
                step = await self._process(row, pending)
                if step is Step.AGAIN:
                    pending.insert(0, row)
                elif step is Step.STOP:
                    break
        except BaseException:
            self.lookahead.cancel()
            raise
        await self.lookahead.drop()
        if pending:
            await self.queue.release([r.id for r in pending])
        await self._flush()

    async def _connected(self, row: QueuedEmail) -> bool:
        """Set up the connection before pacing (its set-up must not eat into
        ``min_delay_ms``); False when the account cannot connect: the failure is logged
        against ``row`` (not counted, no attempt used) and the account backs off."""
        try:
            await (await self.senders.get(self.session.account)).ready()
        except DeliveryError as exc:
            await self.lookahead.drop()  # rows marked ahead get their attempts back first
            error = exc
            if not isinstance(exc, AccountError):
                error = AccountError(f"cannot connect: {exc}", kind="unavailable", code=exc.code)
            self._record(
                row,
                self.session.now(),
                status="queued",
                outcome="account",
                code=error.code,
                response=error.message,
                error=str(error),
            )
            await self._account_failed(error)
            return False
        return True

    async def _wait_for_slot(self) -> bool:
        """Wait (briefly) until the limits allow a send; False means give the batch back."""
        while not self.stopping and self.session.account.status == "active":
            if self.account_changed.is_set():
                await self._refresh_account()
                continue
            wait = self.session.seconds_until_sendable()
            if wait <= 0:
                return True
            if self.session.holds_too_long(wait):
                return False
            await self._pause(wait)
        return False

    async def _process(self, row: QueuedEmail, pending: list[QueuedEmail]) -> Step:
        """Handle one row (see :class:`Step`); ``pending``: the rest of the batch."""
        marked = await self.lookahead.take(row, self._usable(row) and not self._halted())
        if marked is not None:
            return await self._deliver(row, marked, pending, marked=True)
        started = self.session.now()
        if row.suppression_reason:
            self._record_suppressed(row, started, row.suppression_reason)
            return Step.DONE
        if not await self._account_sendable(row):
            return Step.STOP
        if row.to_address.strip().lower() in self.bounced:
            self._record_suppressed(row, started, "hard_bounce")
            return Step.DONE
        self.journal.preparing(row.id)
        message = self._render(row, started)
        if message is None:
            return Step.DONE
        return await self._deliver(row, message, pending)

    def _usable(self, row: QueuedEmail) -> bool:
        """Whether ``row`` may be marked ahead of its turn (see :mod:`mailer.lookahead`):
        nothing known against its recipient, its account's address checked, no rate
        shaped (the next row is then simply the first pending one), and not its last
        attempt (a crash before its turn counts the mark as an attempt)."""
        return (
            row.suppression_reason is None
            and row.attempts + 1 < row.max_attempts
            and row.to_address.strip().lower() not in self.bounced
            and self.session.account.email == self.checked_email
            and not self.traffic.shaper.rates
            and not self.stopping
        )

    def _render(self, row: QueuedEmail, started: float) -> RenderedMessage | None:
        """The message, or None when the row failed (its outcome is recorded)."""
        try:
            return self.renderer.render(row, self.session.account)
        except InvalidMessageError as exc:
            self._record(row, started, status="failed", outcome="invalid", error=str(exc))
        except Exception as exc:  # a template that raises (1/0, bad %) must not kill us
            log.warning("row %s could not be rendered", row.id, exc_info=True)
            self._record(
                row,
                started,
                status="failed",
                outcome="invalid",
                error=f"cannot render: {type(exc).__name__}: {exc}",
            )
        return None

    async def _account_sendable(self, row: QueuedEmail) -> bool:
        """False (account suspended, ``row`` given back) when the account's own From
        address is unusable: that is the account's fault, not every row's."""
        if self.session.account.email == self.checked_email:
            return True
        try:
            self.renderer.address(self.session.account.email, "account email")
        except InvalidMessageError as exc:
            await self.queue.release([row.id])
            await self._account_failed(AccountError(str(exc), kind="config"))
            return False
        self.checked_email = self.session.account.email
        return True

    async def _deliver(
        self,
        row: QueuedEmail,
        message: RenderedMessage,
        pending: list[QueuedEmail],
        *,
        marked: bool = False,
    ) -> Step:
        """Pace, mark (unless ``marked`` ahead), send ``row`` and record its outcome; the
        next pending row may be marked meanwhile (:mod:`mailer.lookahead`)."""
        if not await self.traffic.pace(row, self.session.gate.limits, self._pause, self._halted):
            await self.queue.release([row.id])  # a mark made ahead gets its attempt back
            return Step.STOP
        if not marked:
            step = await self._mark(row)
            if step is not None:
                return step
        self.in_flight = row.id
        started = self.session.now()
        self.lookahead.start(pending, self._usable)
        try:
            sender = await self.senders.get(self.session.account)
            result = await sender.send(message)
        except DeliveryError as exc:
            self.in_flight = None
            await self.lookahead.join()
            return await self._failed(row, exc, started)
        except BaseException:
            self.lookahead.cancel()
            raise
        self.in_flight = None
        self.lookahead.sent_in(self.session.now() - started)
        self.session.gate.record_start(result.mail_from_at)
        self._record(
            row,
            self.session.db_time_of(result.mail_from_at),
            status="sent",
            outcome="sent",
            counted=True,
            code=result.code,
            response=result.response,
        )
        await self.lookahead.join()
        await self.traffic.sent(row, self.session.gate.limits)
        await self.session.succeeded()
        return Step.DONE

    async def _mark(self, row: QueuedEmail) -> Step | None:
        """Mark ``row`` in flight; None when it may be sent, else what became of it."""
        mark = await self._mark_in_flight(row.id)
        if mark.suppression_reason is not None:
            self._record_suppressed(row, self.session.now(), mark.suppression_reason)
            return Step.DONE
        if mark.campaign_held:  # campaigns: paused or cancelled since the claim
            await self.queue.release_held(row.id)
            return Step.DONE
        if mark.account_changed:
            await self._refresh_account()
            return Step.AGAIN
        if not mark.marked:
            log.warning("row %s: lease lost before sending; left to its new holder", row.id)
            return Step.DONE
        return None

    def _halted(self) -> bool:
        """Stopping, or the account is no longer active: no new send may start."""
        return self.stopping or self.session.account.status != "active"

    async def _failed(self, row: QueuedEmail, exc: DeliveryError, started: float) -> Step:
        await self._flush()  # a storm refunds earlier rows' attempts: they must be settled
        exc = await self.traffic.failed(row, exc, self.session.gate.limits)
        decision = decide(
            exc,
            attempts=row.attempts + 1,
            max_attempts=row.max_attempts,
            base=self.settings.retry_base_seconds,
            cap=self.settings.retry_max_seconds,
            fail_unknown=self.settings.unknown_outcome == "fail",
        )
        if decision.counted:
            self.session.gate.record_start(exc.mail_from_at)
            started = self.session.db_time_of(exc.mail_from_at)
        if decision.suppress_reason:
            self.bounced.add(row.to_address.strip().lower())
        self._record(
            row,
            started,
            status=decision.status,
            outcome=decision.outcome,
            counted=decision.counted,
            code=exc.code,
            response=exc.message,
            error=str(exc),
            retry_seconds=decision.retry_seconds,
            refund=decision.refund,
            suppress_reason=decision.suppress_reason,
        )
        log.info("row %s to %s: %s (%s)", row.id, row.to_address, decision.outcome, exc)
        if isinstance(exc, AccountError):
            await self.lookahead.drop()  # the row marked ahead gets its attempt back first
            await self._account_failed(exc)
            return Step.STOP
        return Step.DONE

    async def _account_failed(self, exc: AccountError) -> None:
        await self._flush()
        if await self.session.failed(exc):
            self.request_stop(f"account suspended ({exc.kind})")

    def _record(self, row: QueuedEmail, started: float, *, status: str, **fields: object) -> None:
        """Journal one outcome (before anything else happens) and buffer it for the
        database."""
        self.outcomes.record(
            AttemptResult(
                id=row.id,
                status=status,
                to_address=row.to_address,
                attempted_at=datetime.fromtimestamp(started, UTC),
                duration_ms=max(int((self.session.now() - started) * 1000), 0),
                **fields,  # type: ignore[arg-type]
            )
        )

    def _record_suppressed(self, row: QueuedEmail, started: float, reason: str) -> None:
        self._record(row, started, status="suppressed", error=f"address is suppressed ({reason})")

    async def _flush(self) -> None:
        """Write buffered outcomes (nothing to mark)."""
        await self.outcomes.write()

    async def _mark_in_flight(self, row_id: int) -> Mark:
        """Durably mark ``row_id`` in flight under the limits the gate applies (buffered
        outcomes are written first when they are due); an unmarked row must not be
        sent."""
        return await self.outcomes.mark(row_id, self.session.gate.limits)
