"""The background event writer: opens and clicks are recorded off the request path.

The pixel and the redirect answer at once; :class:`EventWriter` hands their events to a
thread that writes them in batches. A slow or unreachable database therefore never
delays a response, and memory stays bounded: at most ``max_pending`` events wait (newer
ones are dropped and counted), and a batch the database keeps refusing is retried with
backoff for about a minute, then dropped and logged. The thread starts on first use in
each process (safe under forking servers) and is flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tracking.events")

Event = dict[str, Any]
#: Seconds between attempts to write one batch; after the last it is dropped.
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)


class EventWriter:
    """Queues events and writes them with ``write(batch)`` on a background thread."""

    def __init__(
        self,
        write: Callable[[list[Event]], object],
        *,
        max_pending: int = 10_000,
        batch_size: int = 500,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.write = write
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.retry_delays = retry_delays
        self.written = 0
        self.dropped = 0
        self._pending: collections.deque[Event] = collections.deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @property
    def pending(self) -> int:
        """Events waiting or being written."""
        with self._cond:
            return len(self._pending) + self._in_flight

    def submit(self, event: Event) -> bool:
        """Queue ``event`` without blocking; False (and counted) when the queue is full
        or the writer is closed."""
        with self._cond:
            self._ensure_thread()
            if self._closing or len(self._pending) >= self.max_pending:
                self.dropped += 1
                return False
            self._pending.append(event)
            self._cond.notify_all()
            return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was written or dropped; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._in_flight, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to ``timeout``), then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._stop.set()
            self._cond.notify_all()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None:
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        self._pid, self._closing, self._in_flight = os.getpid(), False, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracking-events", daemon=True)
        self._thread.start()
        atexit.register(self.close, 2.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return
                count = min(len(self._pending), self.batch_size)
                batch = [self._pending.popleft() for _ in range(count)]
                self._in_flight = count
            self._write_with_retries(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _write_with_retries(self, batch: list[Event]) -> None:
        for delay in (*self.retry_delays, None):
            try:
                self.write(batch)
                self.written += len(batch)
                return
            except Exception as exc:
                if delay is not None and not self._stop.is_set():
                    log.warning(
                        "writing %d tracking events failed (%s); retrying in %ss",
                        len(batch),
                        exc,
                        delay,
                    )
                if delay is None or self._stop.wait(delay):
                    self.dropped += len(batch)
                    log.error(
                        "dropped %d tracking events the database would not take: %s",
                        len(batch),
                        exc,
                    )
                    return
