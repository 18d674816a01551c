"""Console figures too costly to count on every page view of a large queue: every row by
state (``queue_counts``) and every campaign's rows in finished states (``campaigns``),
saved in ``console_snapshots`` (migration 0019) with when they were counted.

Reading one (:meth:`SnapshotReader.read`) follows :func:`plan`: a snapshot that took
under :data:`INLINE_MS` to count is recounted on every view (a small queue stays exact
and live); a stale one is shown as it is while the caller's ``background`` callback
recounts it elsewhere (the web app: a thread); only the very first count, with nothing
to show yet, is made during the view. :func:`refresh` recounts under a transaction-level
advisory lock, so one process recounts at a time and the others keep showing the saved
figures. The worker's queries never touch the table.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from mailer.sync_db import run, run_one

#: A snapshot counted faster than this (ms) is recounted on every view instead.
INLINE_MS = 25.0
#: Most campaigns the ``campaigns`` snapshot holds (the newest).
CAMPAIGN_LIMIT = 1000
#: A recount may take this long (ms) whatever the web app's statement timeout.
REFRESH_TIMEOUT_MS = 300_000
#: The statement (in ``sql/queries.sql``) and parameters recounting each snapshot.
SNAPSHOTS: dict[str, tuple[str, dict[str, Any]]] = {
    "queue_counts": ("console_snapshot_queue_counts", {}),
    "campaigns": ("console_snapshot_campaigns", {"limit": CAMPAIGN_LIMIT}),
}


class Action(enum.Enum):
    USE = "use"  # fresh enough: show it
    RECOUNT_NOW = "recount now"  # cheap or missing: count it during the view
    RECOUNT_LATER = "recount later"  # stale: show it, recount in the background


@dataclass(frozen=True)
class Snapshot:
    name: str
    figures: Any
    refreshed_at: datetime | None
    age_seconds: float | None

    @property
    def missing(self) -> bool:
        """Whether nothing was counted yet (another process is counting it first)."""
        return self.refreshed_at is None


def plan(age_seconds: float | None, refresh_ms: float | None, max_age: float) -> Action:
    """What to do with a snapshot of this age (None: none saved yet) that took
    ``refresh_ms`` to count, when figures older than ``max_age`` seconds are stale."""
    if age_seconds is None or refresh_ms is None or refresh_ms < INLINE_MS:
        return Action.RECOUNT_NOW
    return Action.RECOUNT_LATER if age_seconds > max_age else Action.USE


def refresh(conn: psycopg.Connection[Any], name: str, max_age: float | None = None) -> bool:
    """Recount snapshot ``name`` in one transaction, unless another process is recounting
    it or (``max_age`` given) it was recounted less than ``max_age`` seconds ago. True
    when recounted."""
    statement, params = SNAPSHOTS[name]
    with conn.transaction():
        if not run_one(conn, "console_snapshot_lock", {"name": name})["locked"]:  # type: ignore[index]
            return False
        saved = run_one(conn, "console_snapshot_get", {"name": name})
        if max_age is not None and saved is not None and saved["age_seconds"] < max_age:
            return False
        run(conn, "console_snapshot_timeout", {"ms": str(REFRESH_TIMEOUT_MS)})
        started = time.perf_counter()
        run(conn, statement, params)
        elapsed_ms = (time.perf_counter() - started) * 1000
        run(conn, "console_snapshot_timed", {"name": name, "ms": elapsed_ms})
    return True


class SnapshotReader:
    """Reads snapshots for one view; ``background(name)`` is called for a stale one."""

    def __init__(
        self, conn: psycopg.Connection[Any], max_age: float, background: Callable[[str], None]
    ) -> None:
        self.conn, self.max_age, self.background = conn, max_age, background

    def read(self, name: str) -> Snapshot:
        row = run_one(self.conn, "console_snapshot_get", {"name": name})
        action = plan(row and row["age_seconds"], row and row["refresh_ms"], self.max_age)
        if action is Action.RECOUNT_NOW and refresh(self.conn, name):
            row = run_one(self.conn, "console_snapshot_get", {"name": name})
        elif action is Action.RECOUNT_LATER:
            self.background(name)
        if row is None:  # another process holds the first count: nothing to show yet
            return Snapshot(name, None, None, None)
        return Snapshot(name, row["figures"], row["refreshed_at"], row["age_seconds"])
