"""What the orchestrator does when a worker exits: pure functions, no processes, no clock.

A worker's exit code (see :mod:`mailer.worker`) says whose fault the exit was:

* ``0`` — a clean stop (account paused/suspended/deleted, or SIGTERM): not a crash; the
  worker is started again promptly if its account is still active;
* ``3`` (``EXIT_LOCKED``) — another worker, probably on another host, holds the account's
  lock: not a crash; try again later (sooner when the lock is seen free), so the account
  fails over when the other host dies;
* ``75`` (``EXIT_DB_UNAVAILABLE``) — the database went away: restart with backoff, but
  the account is not to blame, so it does not count toward suspension;
* a negative return code — killed by a signal: SIGKILL from an operator or the OOM
  killer, a SIGTERM the worker could not act on, even a SIGSEGV a poison row caused. None
  of these is the account's fault (rows that kill every worker are failed per row, not by
  suspending accounts), so the worker is restarted with capped exponential backoff
  (:data:`RESTART_BASE_SECONDS` doubling to :data:`RESTART_MAX_SECONDS`, from the start
  again after a run of :data:`STABLE_RUN_SECONDS`) and the account is never suspended;
* any other exit code (``1``: an exception the worker did not handle — it fails the same
  way on every start, whatever the rows): a crash. Restart with the same backoff;
  ``max_crashes_per_hour`` such crashes within one hour suspend the account with the
  reason, since a worker that cannot run is that account's problem to fix.

The worker itself suspends its account for what the account owns (bad credentials, a
missing host, an unusable From address), with the reason, before exiting cleanly.

:func:`decide_after_exit` combines these into one decision the supervisor applies.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from mailer.worker import EXIT_DB_UNAVAILABLE, EXIT_LOCKED, EXIT_OK

#: Crashes are counted over this window for suspension.
CRASH_WINDOW_SECONDS = 3600.0
#: First restart delay after a failure; doubles per consecutive failure.
RESTART_BASE_SECONDS = 1.0
#: Longest restart delay.
RESTART_MAX_SECONDS = 60.0
#: A worker that ran this long before failing starts its backoff from the beginning.
STABLE_RUN_SECONDS = 300.0
#: Delay before restarting a worker that stopped cleanly while its account is active,
#: when it ran less than :data:`STABLE_RUN_SECONDS` (avoids a tight spawn loop).
CLEAN_RESTART_SECONDS = 0.5
#: Retry window for an account whose lock another worker holds (seconds, jittered).
LOCKED_RETRY_MIN_SECONDS = 10.0
LOCKED_RETRY_MAX_SECONDS = 30.0


class ExitKind(enum.Enum):
    """Why a worker process ended."""

    CLEAN = "clean"
    LOCKED = "locked"
    DB_UNAVAILABLE = "db_unavailable"
    KILLED = "killed"
    CRASH = "crash"


def classify_exit(returncode: int) -> ExitKind:
    """The kind of a worker's exit from its return code (negative: killed by a signal)."""
    if returncode == EXIT_OK:
        return ExitKind.CLEAN
    if returncode == EXIT_LOCKED:
        return ExitKind.LOCKED
    if returncode == EXIT_DB_UNAVAILABLE:
        return ExitKind.DB_UNAVAILABLE
    if returncode < 0:
        return ExitKind.KILLED
    return ExitKind.CRASH


def describe_exit(returncode: int) -> str:
    """``exit code 1`` or ``exit code -9 (SIGKILL)``, for logs and reasons."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"exit code {returncode} ({name})"
    return f"exit code {returncode}"


def restart_delay(
    failures: int, *, base: float = RESTART_BASE_SECONDS, cap: float = RESTART_MAX_SECONDS
) -> float:
    """Seconds to wait before restarting after ``failures`` consecutive failures:
    0 for none, then ``base``, ``2 * base``, ``4 * base`` ... capped at ``cap``."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2 ** min(failures - 1, 62))


def recent_crashes(
    crash_times: Iterable[float], now: float, *, window: float = CRASH_WINDOW_SECONDS
) -> list[float]:
    """The crash times that fall within ``window`` seconds before ``now``, oldest first."""
    return sorted(t for t in crash_times if now - t < window)


def should_suspend(
    crash_times: Iterable[float],
    now: float,
    max_per_hour: int,
    *,
    window: float = CRASH_WINDOW_SECONDS,
) -> bool:
    """True when ``max_per_hour`` (or more) crashes fall within the last hour.

    ``max_per_hour <= 0`` disables suspension."""
    if max_per_hour <= 0:
        return False
    return len(recent_crashes(crash_times, now, window=window)) >= max_per_hour


def suspension_reason(crashes: int, returncode: int) -> str:
    """The ``last_error`` an account suspended for crashing gets."""
    return (
        f"suspended: worker crashed {crashes} times within an hour "
        f"(last {describe_exit(returncode)})"
    )


def locked_retry_delay(rand: float) -> float:
    """Seconds before trying again an account another worker holds; ``rand`` in [0, 1)
    spreads the retries of many accounts and hosts."""
    rand = min(max(rand, 0.0), 1.0)
    return LOCKED_RETRY_MIN_SECONDS + (LOCKED_RETRY_MAX_SECONDS - LOCKED_RETRY_MIN_SECONDS) * rand


@dataclass(frozen=True)
class ExitDecision:
    """What to do after a worker exited.

    ``restart_in`` is None when the worker must not be restarted (the account is being
    suspended); otherwise the delay, in seconds, before the next start (if the account is
    still active by then). ``failures`` and ``crash_times`` are the account's new state.
    """

    kind: ExitKind
    restart_in: float | None
    failures: int
    crash_times: tuple[float, ...]
    suspend_reason: str | None = None

    @property
    def waits_for_lock(self) -> bool:
        return self.kind is ExitKind.LOCKED


def decide_after_exit(
    returncode: int,
    *,
    now: float,
    ran_seconds: float,
    failures: int,
    crash_times: Iterable[float],
    max_crashes_per_hour: int,
    rand: float = 0.5,
    stopping: bool = False,
) -> ExitDecision:
    """The decision after a worker exited with ``returncode``.

    ``now`` and ``crash_times`` are on one monotonic clock; ``ran_seconds`` is how long the
    worker ran; ``failures`` the consecutive failures before this exit; ``stopping`` means
    the orchestrator itself asked the worker to stop (then even a kill is not a crash).
    """
    kind = classify_exit(returncode)
    crashes = tuple(recent_crashes(crash_times, now))
    if stopping and kind in (ExitKind.KILLED, ExitKind.CRASH):
        kind = ExitKind.CLEAN
    if ran_seconds >= STABLE_RUN_SECONDS:
        failures = 0
    if kind is ExitKind.CLEAN:
        delay = 0.0 if stopping or ran_seconds >= STABLE_RUN_SECONDS else CLEAN_RESTART_SECONDS
        return ExitDecision(kind, delay, 0, crashes)
    if kind is ExitKind.LOCKED:
        return ExitDecision(kind, locked_retry_delay(rand), 0, crashes)
    failures += 1
    if kind in (ExitKind.DB_UNAVAILABLE, ExitKind.KILLED):  # not the account's fault
        return ExitDecision(kind, restart_delay(failures), failures, crashes)
    crashes = (*crashes, now)
    if should_suspend(crashes, now, max_crashes_per_hour):
        # The suspension is the account's fresh start: an admin's resume begins anew.
        return ExitDecision(kind, None, 0, (), suspension_reason(len(crashes), returncode))
    return ExitDecision(kind, restart_delay(failures), failures, crashes)
