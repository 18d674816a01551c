"""The console's snapshot reader (:mod:`mailer.console_snapshots`) for the current request,
recounting a stale snapshot in a background thread of this process (at most one per
snapshot here; the advisory lock makes it one across processes), so no view waits for it."""

from __future__ import annotations

import logging
import threading

from mailer.console_snapshots import SnapshotReader, refresh
from tracking.admin.core import conn
from tracking.state import services
from tracking.store import Store

log = logging.getLogger(__name__)

_running: set[str] = set()
_running_lock = threading.Lock()


def snapshots() -> SnapshotReader:
    return SnapshotReader(conn(), services().settings.console_snapshot_seconds, recount_later)


def recount_later(name: str) -> None:
    """Start recounting snapshot ``name`` in a thread unless one of this process is."""
    with _running_lock:
        if name in _running:
            return
        _running.add(name)
    args = (services().store, name, services().settings.console_snapshot_seconds)
    threading.Thread(target=_recount, args=args, name=f"snapshot-{name}", daemon=True).start()


def _recount(store: Store, name: str, max_age: float) -> None:
    try:
        with store.connection() as connection:
            refresh(connection, name, max_age)
    except Exception:  # the next view of a stale snapshot tries again
        log.warning("console snapshot %s: recount failed", name, exc_info=True)
    finally:
        with _running_lock:
            _running.discard(name)
