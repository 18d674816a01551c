"""The bounce reader: polls every account's bounce mailbox and applies what it finds.

Where it runs: in a process of its own (``mailer bounces run``), one per database,
not inside the per-account workers. A worker runs only while its account is ``active``,
but bounces matter most when it is not: the reputation guard pauses an account exactly
when its mail bounces, and the reports of its last sends still have to suppress their
addresses before anyone resumes it. A separate process also keeps slow IMAP servers
and Gmail API calls (``imaplib`` and googleapiclient block; the reader calls them in a
thread) away from the send loop and
its limits, and needs one connection per poll instead of one per worker. The
orchestrator (``mailer run``) starts it beside the workers and restarts it if it dies;
several orchestrators may do so, and a session advisory lock lets one read at a time
(the others wait and take over when it stops). Even two readers at once count nothing
twice: a report is applied under a unique key (see :mod:`mailer.bounces.records`).

One poll of one mailbox: list the unprocessed messages after the account's cursor, and
for each, oldest first: fetch it (unread), parse it, apply it if it is a report about a
message of ours, flag it processed (applied now or before); anything else (auto-replies,
challenge-response, unrelated mail, reports about other senders' messages) stays as it
was. The cursor moves past each message handled and is saved at the end of the batch,
so a reader killed mid-batch reads again what it had not finished, and the report it had
applied but not flagged is found applied (``duplicate``) and only flagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from mailer.bounces.mailbox import Mailbox, MailboxError, open_mailbox
from mailer.bounces.parse import IGNORED, Report, parse_report
from mailer.bounces.records import BounceManager
from mailer.config import Settings
from mailer.credentials import CredentialBox, SecretKeyError, secret_key
from mailer.db import Database, Row
from mailer.models import SenderAccount
from mailer.sql_queries import query

log = logging.getLogger("mailer.bounces")

MailboxOpener = Callable[[SenderAccount, Settings, CredentialBox], Mailbox]


@dataclass(frozen=True)
class PollResult:
    """What one poll of one account's mailbox did."""

    account_id: int
    applied: int = 0
    duplicates: int = 0
    untouched: int = 0
    error: str | None = None


@dataclass
class _Tally:
    applied: int = 0
    duplicates: int = 0
    untouched: int = 0
    cursor: str | None = None


async def poll_all(
    db: Database,
    settings: Settings,
    *,
    account_id: int | None = None,
    opener: MailboxOpener = open_mailbox,
) -> list[PollResult]:
    """Poll every account with a bounce mailbox (or only ``account_id``) once."""
    box = CredentialBox(secret_key(settings))
    results = []
    for row in await db.fetch_all("bounce_mailbox_accounts"):
        if account_id is None or row["id"] == account_id:
            results.append(await poll_account(db, settings, box, row, opener))
    return results


async def poll_account(
    db: Database, settings: Settings, box: CredentialBox, row: Row, opener: MailboxOpener
) -> PollResult:
    """Read one batch of one account's mailbox (see the module docstring)."""
    account = SenderAccount.from_row(row)
    tally = _Tally(cursor=row["bounce_cursor"])
    try:
        mailbox = await asyncio.to_thread(opener, account, settings, box)
    except (MailboxError, SecretKeyError) as exc:
        return await _finish(db, account.id, tally, str(exc))
    try:
        await _read_batch(BounceManager(db, settings), mailbox, account, tally, settings)
    except MailboxError as exc:
        return await _finish(db, account.id, tally, str(exc))
    finally:
        await asyncio.to_thread(mailbox.close)
    return await _finish(db, account.id, tally, None)


async def _read_batch(
    manager: BounceManager,
    mailbox: Mailbox,
    account: SenderAccount,
    tally: _Tally,
    settings: Settings,
) -> None:
    batch = await asyncio.to_thread(mailbox.list_new, tally.cursor, settings.bounce_batch_size)
    for ref in batch.refs:
        raw = await asyncio.to_thread(mailbox.fetch, ref)
        report = _parse(raw, account.id, ref)
        outcome = "not_ours"
        if report is not None and report.kind != IGNORED:
            applied = await manager.apply(report, raw, account_id=account.id, mailbox_ref=ref)
            outcome = applied.outcome
        if outcome == "not_ours":
            tally.untouched += 1
        else:
            await asyncio.to_thread(mailbox.mark_processed, ref)
            tally.applied += outcome == "applied"
            tally.duplicates += outcome == "duplicate"
        tally.cursor = mailbox.cursor_after(ref)


def _parse(raw: bytes, account_id: int, ref: str) -> Report | None:
    """The report, or None (left untouched) for a message the parser cannot read, so one
    strange message never stops the mailbox."""
    try:
        return parse_report(raw)
    except Exception:
        log.exception("bounce mailbox of account %s: message %s is unreadable", account_id, ref)
        return None


async def _finish(db: Database, account_id: int, tally: _Tally, error: str | None) -> PollResult:
    if error:
        log.warning("bounce mailbox of account %s: %s", account_id, error)
    await db.execute(
        "save_bounce_cursor",
        {"account_id": account_id, "cursor": tally.cursor, "last_error": error},
    )
    return PollResult(account_id, tally.applied, tally.duplicates, tally.untouched, error)


class BounceReader:
    """``mailer bounces run``: poll all bounce mailboxes every ``bounce_poll_seconds``,
    while holding the one-reader-per-database lock."""

    stop_timeout = 10.0

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self._stop = asyncio.Event()

    def request_stop(self, reason: str = "stop requested") -> None:
        log.info("bounce reader stopping: %s", reason)
        self._stop.set()

    async def run(self) -> int:
        while not self._stop.is_set():
            try:
                await self._run_locked()
            except (psycopg.Error, OSError) as exc:
                log.warning("bounce reader: database unavailable (%s); retrying", exc)
            await self._sleep(self.settings.bounce_poll_seconds)
        return 0

    async def _run_locked(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as lock:
            cur = await lock.execute(query("try_bounce_reader_lock"))
            locked = await cur.fetchone()
            if not (locked and locked[0]):
                log.info("another bounce reader holds the lock; waiting")
                return
            async with Database(self.url) as db:
                while not self._stop.is_set():
                    for result in await poll_all(db, self.settings):
                        _log_result(result)
                    await self._sleep(self.settings.bounce_poll_seconds)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


def _log_result(result: PollResult) -> None:
    if result.applied or result.duplicates:
        log.info(
            "bounce mailbox of account %s: %s applied, %s already applied, %s left untouched",
            result.account_id,
            result.applied,
            result.duplicates,
            result.untouched,
        )
