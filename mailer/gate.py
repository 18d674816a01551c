"""The limit gate: the one owner of an account's limit state inside its worker.

It holds the limits in force (as the worker applied them), the counted attempts of the
last 24 hours and the pacing anchor, and answers one question: how long until the next
send may start. It is fed by every attempt that counts: the worker's own sends, rows a
previous worker left in flight (counted from the moment they are seen, by row id, so the
recovery that later logs them adds nothing) and in-flight rows recovered afterwards that
were not seen at start.

Rolling windows use the database's clock (the same clock as ``send_logs.created_at``);
``min_delay_ms`` is paced on the monotonic clock from the moment the server answered the
previous MAIL FROM, so neither a clock sync nor the connect and greeting time of a new
connection can shorten the gap the server sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from mailer.limits import Limits, SendWindow

Clock = Callable[[], float]


@dataclass(frozen=True)
class WindowEntry:
    """A counted attempt: when (database clock), and the row id when it was a row another
    worker had in flight (not yet logged)."""

    at: float
    in_flight_id: int | None = None


class LimitGate:
    """See the module docstring. ``db_now`` reads the database clock, ``mono`` the
    monotonic clock; both are injectable for tests."""

    def __init__(self, limits: Limits, *, db_now: Clock, mono: Clock) -> None:
        self.limits = limits
        self._db_now = db_now
        self._mono = mono
        self._window = SendWindow()
        self._counted_ids: set[int] = set()
        self._last_start_mono: float | None = None

    def load(self, entries: Iterable[WindowEntry]) -> None:
        """Start from what the database counts (see the ``account_window`` query)."""
        entries = list(entries)
        self._window = SendWindow(e.at for e in entries)
        self._counted_ids = {e.in_flight_id for e in entries if e.in_flight_id is not None}
        if entries:
            latest = max(e.at for e in entries)
            self._last_start_mono = self._mono() - max(self._db_now() - latest, 0.0)

    def apply(self, limits: Limits) -> bool:
        """Use ``limits`` from now on; True when they differ from the ones in force."""
        changed = limits != self.limits
        self.limits = limits
        return changed

    def db_time_of(self, mono_at: float | None) -> float:
        """The database-clock time of a monotonic reading (None: now)."""
        if mono_at is None:
            return self._db_now()
        return self._db_now() - max(self._mono() - mono_at, 0.0)

    def record_start(self, mono_at: float | None = None) -> None:
        """Count a send whose transaction began at ``mono_at`` (monotonic clock; default
        now). Call it with the time the server answered MAIL FROM."""
        mono_at = self._mono() if mono_at is None else min(mono_at, self._mono())
        at = self.db_time_of(mono_at)
        self._window.record(at)
        self._window.prune(at)
        if self._last_start_mono is None or mono_at > self._last_start_mono:
            self._last_start_mono = mono_at

    def record_recovered(self, in_flight_ids: Iterable[int]) -> int:
        """Count, as of now, recovered in-flight rows not counted yet; return how many."""
        fresh = [i for i in in_flight_ids if i not in self._counted_ids]
        for row_id in fresh:
            self._counted_ids.add(row_id)
            self.record_start()
        return len(fresh)

    def wait(self) -> float:
        """Seconds until the next send may start under the limits in force (0: now;
        ``inf``: a limit of 0)."""
        unpaced = replace(self.limits, min_delay_ms=0)
        wait = self._window.wait(unpaced, self._db_now())
        if self._last_start_mono is not None and self.limits.min_delay_ms > 0:
            gap_left = self._last_start_mono + self.limits.min_delay_ms / 1000 - self._mono()
            wait = max(wait, gap_left)
        return max(wait, 0.0)

    def remaining(self) -> int:
        """How many more sends the rolling windows allow right now (pacing aside)."""
        return self._window.remaining(self.limits, self._db_now())

    def counted_times(self) -> list[float]:
        """The counted attempts' times (database clock), oldest first."""
        return list(self._window.times)
