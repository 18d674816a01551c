"""Retention: ``mailer db prune --older-than 90d`` deletes what is past retention.

Terminal queue rows (``sent``, ``failed``, ``suppressed``, ``cancelled``) older than the
cutoff go with their ``send_logs`` and ``email_events`` (ON DELETE CASCADE), then any
``send_logs`` and ``email_events`` rows older than the cutoff, then settled (delivered or
failed) webhook deliveries older than the cutoff with their attempts, then the records of
recurring-send occurrences queued before the cutoff whose rows are gone. Every batch is one short
transaction of at most ``batch_size`` rows, taken in id order with ``FOR UPDATE SKIP
LOCKED``: it never waits on a row someone else holds, and workers never wait long on it
(they only touch ``queued`` and ``sending`` rows, which it never deletes). A keyset on
the id means each pass reads the table once, however many batches it takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailer.db import Database

#: Pruning younger history would erase sends the rolling daily limit still counts.
MIN_RETENTION = timedelta(hours=24)

#: Rows deleted per transaction.
DEFAULT_BATCH_SIZE = 5000

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_age(text: str) -> timedelta:
    """``90d``, ``12h``, ``2w``, ``30m``, ``45s`` as a timedelta; ValueError otherwise."""
    match = _AGE.match(text.lower())
    if not match:
        raise ValueError(f"invalid age {text!r}: use a number and a unit, e.g. 90d, 36h, 2w")
    age = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if age < MIN_RETENTION:
        raise ValueError(
            f"age {text!r} is under 24 hours: the daily limits count the last "
            "24 hours of sends, which pruning must keep"
        )
    return age


@dataclass
class PruneResult:
    """What a prune deleted, by table (``email_queue`` counts exclude cascaded rows)."""

    cutoff: datetime
    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0


#: (table, query block) in the order they run.
_STEPS = (
    ("email_queue", "prune_queue_batch"),
    ("send_logs", "prune_send_logs_batch"),
    ("email_events", "prune_email_events_batch"),
    ("webhook_deliveries", "prune_webhook_deliveries_batch"),
    ("recurring_runs", "prune_recurring_runs_batch"),
)


class RetentionManager:
    """Deletes rows past retention in bounded batches."""

    def __init__(self, db: Database, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.db = db
        self.batch_size = batch_size

    async def cutoff(self, older_than: timedelta) -> datetime:
        """The database's now() minus ``older_than``."""
        row = await self.db.fetch_one("db_now")
        assert row is not None
        return row["now"] - older_than

    async def prune(self, older_than: timedelta) -> PruneResult:
        """Delete everything older than ``older_than`` (see the module docstring); at least
        :data:`MIN_RETENTION` is always kept."""
        older_than = max(older_than, MIN_RETENTION)
        result = PruneResult(cutoff=await self.cutoff(older_than))
        for table, block in _STEPS:
            result.deleted[table] = 0
            after = 0
            while True:
                row = await self.db.fetch_one(
                    block, {"cutoff": result.cutoff, "after_id": after, "batch": self.batch_size}
                )
                result.batches += 1
                if row is None or not row["deleted"]:
                    break
                result.deleted[table] += row["deleted"]
                after = row["last_id"]
        return result
