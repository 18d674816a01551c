"""Traffic shaping as pure state machines: no I/O, every time passed in (``monotonic``).

:class:`Shaper` keeps an adaptive send rate per account and per destination (AIMD, the
way TCP shares a link): a throttle reply halves the rate of whoever throttled (a big
provider's MX group, else the account as a whole), a stretch of successes raises it by a
step (at least 1/20 of the way back), and it never exceeds what the configured limits
allow. Once the rate is back at the configured ceiling (or, with no ceiling, at twice
where it was cut) shaping for that destination ends. :meth:`Shaper.wait` is how long a
send to an address must wait for its rates.

:class:`StormDetector` notices a server-wide temporary failure reported per recipient
(the same 4xx for several different recipients in a row): the account's problem, not
the rows'.

Destinations are grouped without DNS, by recipient domain: Gmail, Microsoft and Yahoo
each answer for many domains from one MX group; any other domain is its own group.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from mailer.errors import AccountError, DeliveryError, TransientDeliveryError, UnknownOutcomeError
from mailer.limits import Limits
from mailer.senders.smtp_replies import enhanced_code

#: The account as a whole (its SMTP server throttled it, or the MAIL FROM was refused).
ACCOUNT = ""

_GROUPS = {
    "gmail.com": "gmail",
    "googlemail.com": "gmail",
    "outlook.com": "microsoft",
    "hotmail.com": "microsoft",
    "live.com": "microsoft",
    "msn.com": "microsoft",
    "passport.com": "microsoft",
    "yahoo.com": "yahoo",
    "ymail.com": "yahoo",
    "rocketmail.com": "yahoo",
    "aol.com": "yahoo",
    "verizon.net": "yahoo",
}
#: Country variants: hotmail.co.uk, outlook.fr, live.de, yahoo.co.jp, yahoo.com.br ...
_COUNTRY_GROUPS = re.compile(
    r"^(?:(?P<microsoft>hotmail|outlook|live|windowslive)|(?P<yahoo>yahoo|ymail))"
    r"\.(?:com?\.)?[a-z]{2,3}$"
)
#: The named MX groups (a throttle there slows only sends to that group).
PROVIDER_GROUPS = frozenset(_GROUPS.values())


def destination(address: str) -> str:
    """The destination group of a recipient: ``gmail``, ``microsoft``, ``yahoo``, or its
    domain in lower case."""
    domain = address.strip().rpartition("@")[2].strip().rstrip(".>").lower()
    group = _GROUPS.get(domain)
    if group is not None:
        return group
    match = _COUNTRY_GROUPS.match(domain)
    if match:
        return "microsoft" if match["microsoft"] else "yahoo"
    return domain


def throttle_scope(error: DeliveryError, address: str) -> str | None:
    """Whose rate a failure cuts: a provider group's (a throttle answered for one of its
    recipients), the account's (any other throttle), or nobody's (None)."""
    if not (isinstance(error, AccountError) and error.kind == "throttle"):
        return None
    group = destination(address)
    if group in PROVIDER_GROUPS and error.recipient and error.stage in ("rcpt", "data"):
        return group
    return ACCOUNT


def ceiling_per_minute(limits: Limits) -> float | None:
    """The highest rate the configured limits allow, per minute (None: unbounded). Only
    ``min_delay_ms`` is a rate: an hourly or daily limit allows bursts (the limit gate
    enforces those windows), so ``hourly_limit / 60`` would crawl an account that may
    send its hour's share in a minute."""
    return 60_000 / limits.min_delay_ms if limits.min_delay_ms > 0 else None


@dataclass
class Rate:
    """The shaped rate of one destination (messages per minute)."""

    per_minute: float
    #: With no configured ceiling, shaping ends when the rate climbs back here.
    release_at: float | None = None
    successes: int = 0
    #: When the rate last changed (monotonic; None: not yet known after a restart).
    changed_at: float | None = None


@dataclass
class Change:
    """A rate that changed (``per_minute`` None: shaping ended); what to persist."""

    destination: str
    per_minute: float | None
    release_at: float | None = None
    reason: str | None = None


@dataclass
class Shaper:
    """Adaptive rates of one account (see module docstring)."""

    #: Successful sends to a destination before its rate goes up by ``step_per_minute``
    #: ... or this long with successes since the last change, so a low rate does not take
    #: ``increase_after`` slow sends per step to climb back.
    increase_after: int = 10
    increase_every_seconds: float = 30.0
    step_per_minute: float = 1.0
    #: Never below this (per minute), however often the provider throttles.
    floor_per_minute: float = 1.0
    #: How far back sends count to measure the rate in force when a throttle arrives.
    window_seconds: float = 60.0
    #: Fewer sends than this in the window measure no rate: a throttle then only backs
    #: the account off.
    min_sample: int = 2
    rates: dict[str, Rate] = field(default_factory=dict)
    last_send: dict[str, float] = field(default_factory=dict)
    recent: dict[str, deque[float]] = field(default_factory=dict)

    def load(self, destination_: str, per_minute: float, release_at: float | None) -> None:
        """Restore a persisted rate (worker start)."""
        self.rates[destination_] = Rate(per_minute, release_at)

    def effective(self, destination_: str, limits: Limits) -> float | None:
        """The rate in force for a destination, per minute (None: limits only)."""
        rate = self.rates.get(destination_)
        if rate is None:
            return None
        ceiling = ceiling_per_minute(limits)
        return rate.per_minute if ceiling is None else min(rate.per_minute, ceiling)

    def wait(self, address: str, limits: Limits, now: float) -> float:
        """Seconds before a send to ``address`` fits the account's and its destination's
        shaped rates (0: send now)."""
        wait = 0.0
        for key in (ACCOUNT, destination(address)):
            per_minute = self.effective(key, limits)
            last = self.last_send.get(key)
            if per_minute is not None and last is not None:
                wait = max(wait, last + 60.0 / per_minute - now)
        return max(wait, 0.0)

    def pick(self, addresses: list[str], limits: Limits, now: float) -> int:
        """Which of the pending rows (by recipient, in claim order) to send next: the
        first that may go now, else the one that may go soonest. A throttled provider's
        rows thus wait without holding up the others."""
        if not self.rates:  # nothing shaped (the usual case): claim order
            return 0
        best, best_wait = 0, float("inf")
        for index, address in enumerate(addresses):
            wait = self.wait(address, limits, now)
            if wait <= 0:
                return index
            if wait < best_wait:
                best, best_wait = index, wait
        return best

    def sent(self, address: str, now: float) -> None:
        """A send (attempt) to ``address`` started at ``now``."""
        for key in (ACCOUNT, destination(address)):
            self.last_send[key] = now
            times = self.recent.setdefault(key, deque())
            times.append(now)
            while times and times[0] <= now - self.window_seconds:
                times.popleft()

    def succeeded(self, address: str, limits: Limits, now: float | None = None) -> list[Change]:
        """A send was accepted (at ``now``, monotonic): additive increase of each shaped
        rate it passed through, after ``increase_after`` successes or
        ``increase_every_seconds`` with successes since the rate last changed."""
        changes = []
        ceiling = ceiling_per_minute(limits)
        for key in (ACCOUNT, destination(address)):
            rate = self.rates.get(key)
            if rate is None:
                continue
            rate.successes += 1
            if now is not None and rate.changed_at is None:
                rate.changed_at = now
            stretch = (
                now is not None
                and rate.changed_at is not None
                and now - rate.changed_at >= self.increase_every_seconds
            )
            if rate.successes < self.increase_after and not stretch:
                continue
            rate.successes = 0
            rate.changed_at = now
            top = ceiling if ceiling is not None else rate.release_at
            # At least 1/20 of the way back per step, so big rates recover in 20 steps.
            rate.per_minute += max(self.step_per_minute, (top or 0.0) / 20)
            if top is not None and rate.per_minute >= top:
                del self.rates[key]
                changes.append(Change(key, None))
            else:
                changes.append(Change(key, rate.per_minute, rate.release_at))
        return changes

    def throttled(
        self, error: DeliveryError, address: str, limits: Limits, now: float
    ) -> Change | None:
        """A throttle reply: halve the rate of whoever throttled (see
        :func:`throttle_scope`); the first cut halves the rate measured over the last
        ``window_seconds``."""
        key = throttle_scope(error, address)
        if key is None:
            return None
        current = self.effective(key, limits)
        if current is None:
            times = self.recent.get(key, deque())
            count = len([t for t in times if t > now - self.window_seconds])
            if count < self.min_sample:
                return None  # no rate to halve (a first send refused): backoff alone
            measured = count * 60.0 / self.window_seconds
            ceiling = ceiling_per_minute(limits)
            current = measured if ceiling is None else min(measured, ceiling)
        new = max(self.floor_per_minute, current / 2)
        rate = self.rates.get(key)
        release_at = rate.release_at if rate is not None else max(current, new * 2)
        self.rates[key] = Rate(new, release_at, changed_at=now)
        reason = f"{error.code or ''} {error.message}".strip()
        return Change(key, new, release_at, reason)


def _signature(error: DeliveryError) -> tuple[object, ...]:
    """What makes two failures "the same": code and enhanced code, else the text with
    addresses taken out (Postfix quotes the recipient in every RCPT reply)."""
    status = enhanced_code(error.message)
    if status is not None:
        return (error.code, status)
    text = re.sub(r"<[^>]*>|\S+@\S+", "", error.message).strip().lower()
    return (error.code, text)


@dataclass
class StormDetector:
    """Notices the same temporary failure for ``threshold`` different recipients in a
    row: the server's problem, so the account should back off and the rows keep their
    attempts."""

    threshold: int = 3
    streak: list[tuple[int, str, tuple[object, ...]]] = field(default_factory=list)

    def succeeded(self) -> None:
        self.streak.clear()

    def failed(self, row_id: int, address: str, error: DeliveryError) -> list[int] | None:
        """Feed a failure; returns the ids of the streak's rows (this one last) when the
        threshold is reached, else None."""
        if type(error) is not TransientDeliveryError or isinstance(error, UnknownOutcomeError):
            self.streak.clear()
            return None
        signature = _signature(error)
        if self.streak and self.streak[-1][2] != signature:
            self.streak.clear()
        recipient = address.strip().lower()
        if recipient not in {r for _, r, _ in self.streak}:
            self.streak.append((row_id, recipient, signature))
        if len(self.streak) < self.threshold:
            return None
        ids = [row for row, _, _ in self.streak]
        self.streak.clear()
        return ids

    @staticmethod
    def escalate(error: DeliveryError, recipients: int) -> AccountError:
        """The account-level error a storm of ``error`` amounts to."""
        return AccountError(
            f"server-side temporary failure (the same reply for {recipients} different "
            f"recipients in a row): {error.message}",
            kind="unavailable",
            code=error.code,
            reached_provider=error.reached_provider,
            mail_from_at=error.mail_from_at,
        )
