"""When a recurring send fires: pure functions over a cron expression and an IANA time zone.

Occurrences are computed on the zone's wall clock (croniter on naive local times), then
turned into instants:

- every local time that matches fires once; in the autumn's repeated hour that is its
  first instant (a ``*/15`` schedule does not run the repeated quarter-hours again);
- a local time that does not exist (the spring's skipped hour) fires at the same offset
  as before the change, i.e. right after it: ``30 2 * * *`` in New York runs at 03:30
  EDT on the spring-forward day, and the skipped quarter-hours of ``*/15`` collapse into
  the first instant after the gap.

:func:`plan_due` is the scheduler's policy after downtime: however many occurrences were
missed, only the latest one is queued (once), and the schedule moves to the first
occurrence after ``now`` (listmonk #1801 queued one per missed tick).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterError, croniter

from mailer.errors import MailerError

#: ``@`` shorthands accepted besides five-field expressions (no ``@reboot``, no seconds).
MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
MAX_CRON_LENGTH = 200
#: Missed occurrences counted one by one before the scheduler jumps straight to ``now``.
MAX_COUNTED = 1000
_SPACES = re.compile(r"\s+")


class RecurrenceError(MailerError):
    """An unusable cron expression or time zone (the message says why)."""


@dataclass(frozen=True)
class Recurrence:
    """A checked cron expression and its zone."""

    cron: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DuePlan:
    """What to do with a due schedule: queue ``occurrence`` (the latest due one, standing
    for ``missed`` occurrences, itself included) and wait for ``next_run_at`` next."""

    occurrence: datetime
    missed: int
    next_run_at: datetime


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def check_timezone(name: object) -> str:
    """``name`` if it is an IANA time zone known to this system, else RecurrenceError."""
    if not isinstance(name, str) or name not in _zones():
        shown = repr(name)[:80]
        raise RecurrenceError(
            f"unknown time zone {shown}: use an IANA name such as 'Europe/Paris' or 'UTC'"
        )
    return name


def check_cron(expression: object) -> str:
    """The expression normalised (single spaces) if croniter accepts it as five fields
    (minute hour day-of-month month day-of-week) or an ``@`` shorthand."""
    if not isinstance(expression, str) or not expression.strip():
        raise RecurrenceError("the cron expression is empty")
    if len(expression) > MAX_CRON_LENGTH:
        raise RecurrenceError(f"the cron expression is longer than {MAX_CRON_LENGTH} characters")
    text = _SPACES.sub(" ", expression.strip())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise RecurrenceError(f"unknown cron shorthand {text!r}; use one of {_macro_list()}")
        return text.lower()
    if len(text.split(" ")) != 5:
        raise RecurrenceError(
            f"cron expression {text!r} must have five fields: "
            "minute hour day-of-month month day-of-week"
        )
    if not croniter.is_valid(text):
        raise RecurrenceError(f"invalid cron expression {text!r}")
    return text


def _macro_list() -> str:
    return ", ".join(sorted(MACROS))


def check_recurrence(cron: object, timezone: object, now: datetime) -> Recurrence:
    """A :class:`Recurrence` that has an occurrence after ``now`` (``0 0 30 2 *`` has
    none), else RecurrenceError."""
    recurrence = Recurrence(check_cron(cron), check_timezone(timezone))
    next_occurrence(recurrence, now)
    return recurrence


def next_occurrence(recurrence: Recurrence, after: datetime) -> datetime:
    """The first occurrence strictly after ``after`` (aware), as a UTC instant."""
    zone = recurrence.zone
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None)
    try:
        walker = croniter(recurrence.cron, wall)
        for _ in range(10):
            candidate = _instant(walker.get_next(datetime), zone, local.fold)
            if candidate > after:
                return candidate
    except CroniterError as exc:
        raise RecurrenceError(f"{recurrence.cron!r} never occurs: {exc}") from None
    raise RecurrenceError(f"{recurrence.cron!r}: no occurrence after {after.isoformat()}")


def previous_occurrence(recurrence: Recurrence, at: datetime) -> datetime | None:
    """The latest occurrence at or before ``at`` (minute precision), or None."""
    zone = recurrence.zone
    local = at.astimezone(zone)
    start = local.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
    try:
        found = croniter(recurrence.cron, start).get_prev(datetime)
    except CroniterError:
        return None
    moment = _instant(found, zone, 0)
    return moment if moment <= at else None


def _instant(wall: datetime, zone: ZoneInfo, fold: int) -> datetime:
    """The UTC instant of the local wall time ``wall``: its first instant when repeated
    (its second when ``fold`` says the clock is already in the repeat), and the
    before-the-change offset when it does not exist."""
    first = wall.replace(tzinfo=zone, fold=0)
    if fold:
        second = wall.replace(tzinfo=zone, fold=1)
        repeated = second.utcoffset() != first.utcoffset()
        if repeated and second.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
            return second.astimezone(UTC)
    return first.astimezone(UTC)


def occurrence_label(base: str, occurrence: datetime, timezone: str) -> str:
    """The name of the campaign an occurrence of a recurring campaign creates:
    ``<base>-<local time ISO 8601, to the minute, with its offset>``, e.g.
    ``weekly-2026-12-07T09:00+01:00``. Deterministic: a retried occurrence gets the same
    name (and the campaign's unique name refuses a second one); the offset keeps the two
    instants of a repeated autumn hour apart."""
    local = occurrence.astimezone(ZoneInfo(timezone))
    return f"{base}-{local.isoformat(timespec='minutes')}"


#: The length of :func:`occurrence_label`'s suffix (``-YYYY-MM-DDTHH:MM+HH:MM``).
LABEL_SUFFIX = 23


def plan_due(recurrence: Recurrence, next_run_at: datetime, now: datetime) -> DuePlan | None:
    """None while ``next_run_at`` is in the future; else the latest occurrence at or before
    ``now`` (queued once, whatever was missed) and the first one after ``now``."""
    if next_run_at > now:
        return None
    latest, missed = next_run_at, 1
    following = next_occurrence(recurrence, latest)
    while following <= now:
        if missed >= MAX_COUNTED:
            jump = previous_occurrence(recurrence, now)
            if jump is not None and jump > latest:
                latest = jump
            following = next_occurrence(recurrence, max(latest, now))
            return DuePlan(latest, missed, following)
        latest, missed = following, missed + 1
        following = next_occurrence(recurrence, latest)
    return DuePlan(latest, missed, following)
