"""The invariant checker: pure functions over a run's :class:`~chaos.history.History`.

Each invariant of DESIGN.md "Semantics" is one function returning its violations (one
readable line each); :func:`check` runs them all into a :class:`Report`:

- ``terminal``: every row ended sent/failed/suppressed/cancelled, or waits only because
  every account that may send it is paused or at its limit (counted in ``waiting``);
- ``at_most_once``: a Message-ID reached the servers once, except one extra delivery per
  ``unknown`` attempt of its row (a crash in flight, a reply lost after DATA): those are
  counted in ``duplicates`` by cause;
- ``limits``: per account, deliveries in any rolling 24 h / 60 min never exceed the limit
  in force (a change applies ``grace`` seconds after it committed, and counts the sends
  already in its window);
- ``min_delay``: consecutive deliveries' MAIL FROM at least ``min_delay_ms`` apart
  (``tolerance`` seconds of slack);
- ``suppression``: no MAIL FROM to an address ``grace`` seconds after its suppression;
- ``agreement``: each delivery has its row and a send_logs entry, each sent row was
  delivered.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from chaos.history import Account, Attempt, Change, Delivery, History, Row

INVARIANTS = ("terminal", "at_most_once", "limits", "min_delay", "suppression", "agreement")
TERMINAL = frozenset({"sent", "failed", "suppressed", "cancelled"})
DAY, HOUR = 86_400.0, 3_600.0
#: Seconds after an admin's commit before the change must hold (a transaction that had
#: already started may still finish under the old value).
GRACE = 0.5
#: A 250 later than this after the data (seconds) may have missed the client's timeout.
LATE_REPLY = 1.0
#: Slack on ``min_delay_ms`` (clock reads and scheduling), seconds.
TOLERANCE = 0.002


@dataclass
class Report:
    """The verdict on one run."""

    deliveries: int
    violations: dict[str, list[str]]
    duplicates: Counter[str] = field(default_factory=Counter)
    waiting: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def failed_invariants(self) -> list[str]:
        return [name for name in INVARIANTS if self.violations.get(name)]


def check(history: History, grace: float = GRACE, tolerance: float = TOLERANCE) -> Report:
    """Every invariant over ``history``."""
    lost, waiting = check_terminal(history)
    unexplained, duplicates = check_at_most_once(history)
    violations = {
        "terminal": lost,
        "at_most_once": unexplained,
        "limits": check_limits(history, grace),
        "min_delay": check_min_delay(history, grace, tolerance),
        "suppression": check_suppression(history, grace),
        "agreement": check_agreement(history),
    }
    return Report(len(history.deliveries), violations, duplicates, waiting)


# -- terminal ---------------------------------------------------------------------------


def check_terminal(history: History) -> tuple[list[str], Counter[str]]:
    """Rows left non-terminal without excuse, and the excused ones by reason."""
    lost: list[str] = []
    waiting: Counter[str] = Counter()
    for row in history.rows:
        if row.status in TERMINAL:
            continue
        reason = _waiting_reason(history, row) if row.status == "queued" else None
        if reason is None:
            lost.append(
                f"row {row.id} ({row.to_address}) left {row.status!r}: {_why(history, row)}"
            )
        else:
            waiting[reason] += 1
    return lost, waiting


def _candidates(history: History, row: Row) -> list[Account]:
    if row.account_id is not None:
        return [a for a in history.final if a.id == row.account_id]
    return [a for a in history.final if a.pool == row.pool]


def _waiting_reason(history: History, row: Row) -> str | None:
    """Why ``row`` may rightly wait: each account that could send it is paused or at a
    limit. None if one could send it now."""
    candidates = _candidates(history, row)
    reasons = [_blocked(history, account) for account in candidates]
    if not candidates or any(r is None for r in reasons):
        return None
    return "; ".join(sorted({r for r in reasons if r}))


def _blocked(history: History, account: Account) -> str | None:
    if account.status == "paused":
        return "account paused"
    if account.status != "active":
        return None
    used_day = _used(history, account, DAY)
    if used_day >= account.daily_limit:
        return "account at daily limit"
    if account.hourly_limit is not None and _used(history, account, HOUR) >= account.hourly_limit:
        return "account at hourly limit"
    return None


def _used(history: History, account: Account, span: float) -> int:
    """Sends in the window ending now: the servers' count or the engine's counted
    attempts, whichever is larger."""
    since = history.ended_at - span
    delivered = sum(
        1 for d in history.deliveries if d.server == account.email and d.mail_at > since
    )
    counted = sum(
        1
        for a in history.attempts
        if a.account_id == account.id and a.counted and a.created_at > since
    )
    return max(delivered, counted)


def _why(history: History, row: Row) -> str:
    states = [f"{a.email} {a.status}" for a in _candidates(history, row)]
    due = "" if row.due_at <= history.ended_at else f", due in {row.due_at - history.ended_at:.1f}s"
    return (", ".join(states) or "no account can send it") + due


# -- at most once -----------------------------------------------------------------------


def check_at_most_once(history: History) -> tuple[list[str], Counter[str]]:
    """Unexplained extra deliveries, and the explained ones counted by cause."""
    rows = {r.message_id: r for r in history.rows if r.message_id}
    unknown = _unknown_attempts(history.attempts)
    by_message: dict[str, list[Delivery]] = defaultdict(list)
    for d in history.deliveries:
        by_message[d.message_id].append(d)
    unexplained: list[str] = []
    causes: Counter[str] = Counter()
    for message_id, copies in by_message.items():
        extra = len(copies) - 1
        if extra < 1:
            continue
        row = rows.get(message_id)
        explained = unknown.get(row.id, []) if row else []
        for cause in explained[:extra]:
            causes[cause] += 1
        rest = extra - min(extra, len(explained))
        if rest:
            cause = "unexplained" + _reply_note(copies)
            causes[cause] += rest
            unexplained.append(
                f"{message_id} delivered {len(copies)} times ({_servers(copies)}), "
                f"{len(explained)} unknown outcome(s) logged: {cause}"
            )
    return unexplained, causes


def _reply_note(copies: list[Delivery]) -> str:
    """Whether a copy's reply never came or came late (the client may have timed out)."""
    if any(not d.acked for d in copies):
        return ", a reply was lost"
    if any(d.reply_seconds is not None and d.reply_seconds > LATE_REPLY for d in copies):
        return ", a reply was late"
    return ""


def _unknown_attempts(attempts: list[Attempt]) -> dict[int, list[str]]:
    """Per row, the cause of each ``unknown`` attempt."""
    causes: dict[int, list[str]] = defaultdict(list)
    for a in attempts:
        if a.outcome == "unknown":
            crashed = "died" in a.response or "lease expired" in a.response
            causes[a.queue_id].append("crash in flight" if crashed else "reply lost")
    return causes


def _servers(copies: list[Delivery]) -> str:
    return ", ".join(f"{d.server}@{d.mail_at:.3f}{'' if d.acked else ' no reply'}" for d in copies)


# -- limits and pacing ------------------------------------------------------------------


def _by_account(history: History) -> dict[int, list[Delivery]]:
    """Each account's deliveries (on its own server), in MAIL FROM order."""
    ids = {a.email: a.id for a in history.initial}
    grouped: dict[int, list[Delivery]] = {a.id: [] for a in history.initial}
    for d in sorted(history.deliveries, key=lambda d: d.mail_at):
        if d.server in ids:
            grouped[ids[d.server]].append(d)
    return grouped


def in_force(initial: Account, changes: list[Change], at: float, grace: float) -> Account:
    """``initial``'s limits after the changes that must hold at ``at``."""
    limits = {
        "daily_limit": initial.daily_limit,
        "hourly_limit": initial.hourly_limit,
        "min_delay_ms": initial.min_delay_ms,
    }
    for change in sorted(changes, key=lambda c: c.at):
        if change.account_id != initial.id or change.at + grace > at:
            continue
        for name in limits:
            value = getattr(change, name)
            if value is not None:
                limits[name] = value
    return Account(initial.id, initial.email, initial.pool, initial.status, **limits)


def _since_change(history: History, account_id: int, name: str, at: float) -> str:
    """ ", set 1.2 s earlier" when an admin changed limit ``name`` of the account before
    ``at`` (a violation soon after it may be a change applied late)."""
    times = [
        c.at
        for c in history.changes
        if c.account_id == account_id and getattr(c, name) is not None and c.at <= at
    ]
    return f", set {at - max(times):.1f}s earlier" if times else ""


def check_limits(history: History, grace: float = GRACE) -> list[str]:
    """Deliveries beyond the daily or hourly limit in force when their MAIL FROM came."""
    overshoots = []
    initial = {a.id: a for a in history.initial}
    for account_id, sends in _by_account(history).items():
        for i, d in enumerate(sends):
            limits = in_force(initial[account_id], history.changes, d.mail_at, grace)
            windows = [("daily", DAY, limits.daily_limit), ("hourly", HOUR, limits.hourly_limit)]
            for name, span, limit in windows:
                count = sum(1 for e in sends[: i + 1] if e.mail_at > d.mail_at - span)
                if limit is not None and count > limit:
                    overshoots.append(
                        f"{d.server}: send #{count} in {name} window at "
                        f"{d.mail_at:.3f} over limit {limit}"
                        f"{_since_change(history, account_id, name + '_limit', d.mail_at)}"
                        f" ({d.message_id})"
                    )
    return overshoots


def check_min_delay(
    history: History, grace: float = GRACE, tolerance: float = TOLERANCE
) -> list[str]:
    """Consecutive deliveries of one account closer than its ``min_delay_ms``."""
    violations = []
    initial = {a.id: a for a in history.initial}
    for account_id, sends in _by_account(history).items():
        for before, prev, d in zip([None, *sends], sends, sends[1:], strict=False):
            delay = in_force(initial[account_id], history.changes, d.mail_at, grace).min_delay_ms
            gap = d.mail_at - prev.mail_at
            if gap < delay / 1000.0 - tolerance:
                violations.append(
                    f"{d.server}: MAIL FROM {gap * 1000:.1f} ms after the previous "
                    f"one{_connection_note(before, prev, d)} at {d.mail_at:.3f}, "
                    f"min_delay_ms {delay}"
                    f"{_since_change(history, account_id, 'min_delay_ms', d.mail_at)}"
                    f" ({d.message_id})"
                )
    return violations


def _connection_note(before: Delivery | None, prev: Delivery, d: Delivery) -> str:
    """Whether the pair straddles a new SMTP connection (evidence for a pacing clock
    that starts before connecting)."""
    if d.connection != prev.connection:
        return " on a new connection"
    if before is None or before.connection != prev.connection:
        return ", which opened its connection"
    return ""


# -- suppressions -----------------------------------------------------------------------


def check_suppression(history: History, grace: float = GRACE) -> list[str]:
    """Deliveries whose MAIL FROM came after the recipient's suppression committed."""
    suppressed = {s.email.strip().lower(): s.at for s in history.suppressions}
    violations = []
    for d in history.deliveries:
        for rcpt in d.rcpt_tos:
            at = suppressed.get(rcpt.strip().lower())
            if at is not None and d.mail_at > at + grace:
                violations.append(
                    f"{d.message_id} to {rcpt}: MAIL FROM {d.mail_at - at:.3f}s after "
                    "its suppression committed"
                )
    return violations


# -- sink and database agree -------------------------------------------------------------


def check_agreement(history: History) -> list[str]:
    """Deliveries without their row or send_logs entry; sent rows never delivered."""
    rows = {r.message_id: r for r in history.rows if r.message_id}
    logged = {a.queue_id for a in history.attempts}
    delivered = {d.message_id for d in history.deliveries}
    problems = []
    for message_id in sorted(delivered):
        row = rows.get(message_id)
        if row is None:
            problems.append(f"{message_id} delivered but no email_queue row has it")
        elif row.id not in logged:
            problems.append(f"{message_id} delivered but row {row.id} has no send_logs row")
    for row in history.rows:
        if row.status == "sent" and row.message_id not in delivered:
            problems.append(f"row {row.id} is 'sent' but no server received {row.message_id}")
    return problems
