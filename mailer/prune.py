"""Retention: ``mailer db prune --older-than 90d`` deletes what is past retention.

``send_logs`` and ``email_events`` are partitioned by UTC day (migration 0020): first the
day partitions wholly older than the cutoff are dropped, which costs the same whatever
they hold (their rows count as deleted); the partitions of the coming week are created
if missing. Then terminal queue rows (``sent``, ``failed``, ``suppressed``,
``cancelled``) older than the cutoff go, then any ``send_logs`` and ``email_events`` rows
older than the cutoff still left (in the day the cutoff falls in, or in the DEFAULT
partition), then
settled (delivered or failed) webhook deliveries older than the cutoff with their
attempts, then the records of recurring-send occurrences queued before the cutoff whose
rows are gone. Every batch is one short transaction of at most ``batch_size`` rows, taken in
id order with ``FOR UPDATE SKIP LOCKED``: it never waits on a row someone else holds,
and workers never wait long on it (they only touch ``queued`` and ``sending`` rows, which
it never deletes). A keyset on the id means each pass reads the table once, however many
batches it takes. Run it shortly after midnight UTC: the day the cutoff falls in then
holds few rows to delete one by one. A queue row's logs and events are not deleted with
it (no cascade into the partitions): those younger than the cutoff (a row that failed
after months of retries) stay until they pass retention, and still count against the
limits while they are in the 24-hour window.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailer.db import Database

#: Pruning younger history would erase sends the rolling daily limit still counts.
MIN_RETENTION = timedelta(hours=24)

#: Tries at dropping a partition whose locks are busy, and the pause between two.
DROP_TRIES = 10
DROP_RETRY_SECONDS = 0.5

#: Rows deleted per transaction.
DEFAULT_BATCH_SIZE = 5000
#: The longest retention: its cutoff must stay a date PostgreSQL and Python both hold.
MAX_AGE = timedelta(days=100 * 366)

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_age(text: str) -> timedelta:
    """``90d``, ``12h``, ``2w``, ``30m``, ``45s`` as a timedelta; ValueError otherwise."""
    match = _AGE.match(text.lower())
    if not match:
        raise ValueError(f"invalid age {text!r}: use a number and a unit, e.g. 90d, 36h, 2w")
    try:
        age = timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise ValueError(f"invalid age {text!r}: too long") from None
    if age > MAX_AGE:
        raise ValueError(f"invalid age {text!r}: at most {MAX_AGE.days} days")
    if age < MIN_RETENTION:
        raise ValueError(
            f"age {text!r} is under 24 hours: the daily limits count the last "
            "24 hours of sends, which pruning must keep"
        )
    return age


@dataclass
class PruneResult:
    """What a prune deleted, by table (logs and events in dropped partitions included)."""

    cutoff: datetime
    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    #: Day partitions dropped, by table (their rows are in ``deleted``).
    partitions_dropped: dict[str, int] = field(default_factory=dict)


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
        await self.db.execute("ensure_partitions")
        await self._drop_partitions(result)
        for table, block in _STEPS:
            result.deleted.setdefault(table, 0)
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

    async def _drop_partitions(self, result: PruneResult) -> None:
        """Drop the day partitions wholly past the cutoff, retrying busy ones a few times
        (whatever is left is deleted row by row after)."""
        for attempt in range(DROP_TRIES):
            if attempt:
                await asyncio.sleep(DROP_RETRY_SECONDS)
            rows = await self.db.fetch_all("drop_partitions_before", {"cutoff": result.cutoff})
            for row in rows:
                table = row["parent"]
                dropped = result.partitions_dropped.get(table, 0) + row["partitions"]
                result.partitions_dropped[table] = dropped
                result.deleted[table] = result.deleted.get(table, 0) + row["rows_dropped"]
            if not any(row["busy"] for row in rows):
                return
