"""Traffic shaping (AIMD per account and per provider group) and server-wide storm
detection, as pure state machines."""

from __future__ import annotations

import pytest

from mailer.errors import AccountError, TransientDeliveryError, UnknownOutcomeError
from mailer.limits import Limits
from mailer.senders.smtp_replies import classify_response
from mailer.shaping import (
    ACCOUNT,
    Shaper,
    StormDetector,
    ceiling_per_minute,
    destination,
    throttle_scope,
)

UNLIMITED = Limits(daily_limit=100_000, hourly_limit=None, min_delay_ms=0)


@pytest.mark.parametrize(
    ("address", "group"),
    [
        ("a@gmail.com", "gmail"),
        ("A@GoogleMail.com", "gmail"),
        ("b@hotmail.co.uk", "microsoft"),
        ("b@outlook.fr", "microsoft"),
        ("b@live.com", "microsoft"),
        ("c@yahoo.co.jp", "yahoo"),
        ("c@yahoo.com.br", "yahoo"),
        ("c@aol.com", "yahoo"),
        ("d@Example.ORG", "example.org"),
        ("e@outlook.example.com", "outlook.example.com"),
    ],
)
def test_destination_groups_without_dns(address, group):
    assert destination(address) == group


def rcpt_throttle(address: str) -> AccountError:
    error = classify_response(
        421, "4.7.0 Try again later, closing connection", stage="rcpt", recipient=address
    )
    assert isinstance(error, AccountError) and error.kind == "throttle"
    return error


def test_throttle_scope_provider_group_or_account():
    assert throttle_scope(rcpt_throttle("a@gmail.com"), "a@gmail.com") == "gmail"
    assert throttle_scope(rcpt_throttle("a@example.org"), "a@example.org") == ACCOUNT
    at_mail = classify_response(450, "4.7.1 Error: too much mail from 127.0.0.1", stage="mail")
    assert throttle_scope(at_mail, "a@gmail.com") == ACCOUNT
    assert throttle_scope(TransientDeliveryError("busy", code=450), "a@gmail.com") is None


def test_ceiling_comes_from_min_delay_only():
    assert ceiling_per_minute(UNLIMITED) is None
    assert ceiling_per_minute(Limits(500, None, 2000)) == 30.0
    # an hourly limit allows a burst (the gate keeps the window): it is no rate ceiling
    assert ceiling_per_minute(Limits(500, 120, 100)) == 600.0
    assert ceiling_per_minute(Limits(500, 120, 0)) is None


def send_n(shaper: Shaper, address: str, n: int, start: float, gap: float) -> float:
    t = start
    for _ in range(n):
        shaper.sent(address, t)
        t += gap
    return t


def test_a_throttle_halves_the_measured_rate_and_successes_raise_it_slowly():
    shaper = Shaper(increase_after=3, step_per_minute=1.0)
    # 10 sends in the last minute, then the provider says "too much".
    now = send_n(shaper, "x@example.org", 10, 0.0, 5.0)
    change = shaper.throttled(rcpt_throttle("x@example.org"), "x@example.org", UNLIMITED, now)
    assert change is not None and change.destination == ACCOUNT
    assert change.per_minute == 5.0 and change.release_at == 10.0
    assert shaper.effective(ACCOUNT, UNLIMITED) == 5.0
    # Paced at 5/min: 12 s between sends, measured from the last one.
    assert shaper.wait("y@example.org", UNLIMITED, now) == pytest.approx(12.0 - 5.0)
    # Additive increase: +1/min after every 3 successes.
    changes = [shaper.succeeded("x@example.org", UNLIMITED) for _ in range(3)]
    assert [c.per_minute for c in changes[2]] == [6.0]
    # A second throttle halves the shaped rate, not the measured one.
    again = shaper.throttled(rcpt_throttle("x@example.org"), "x@example.org", UNLIMITED, now)
    assert again is not None and again.per_minute == 3.0 and again.release_at == 10.0


def test_shaping_ends_when_the_rate_is_back_at_the_configured_ceiling():
    limits = Limits(10_000, None, 6000)  # at most 10/min
    shaper = Shaper(increase_after=1, step_per_minute=3.0)
    now = send_n(shaper, "x@example.org", 10, 0.0, 6.0) - 6.0  # right after the 10th
    change = shaper.throttled(rcpt_throttle("x@example.org"), "x@example.org", limits, now)
    assert change is not None and change.per_minute == 5.0
    assert shaper.succeeded("x@example.org", limits)[0].per_minute == 8.0
    [released] = shaper.succeeded("x@example.org", limits)
    assert released.per_minute is None and shaper.effective(ACCOUNT, limits) is None
    assert shaper.wait("x@example.org", limits, now) == 0.0


def test_never_above_configured_limits_nor_below_the_floor():
    limits = Limits(10_000, None, 60_000)  # min_delay 60 s = 1/min ceiling
    shaper = Shaper(floor_per_minute=0.5)
    shaper.load(ACCOUNT, 40.0, None)
    assert shaper.effective(ACCOUNT, limits) == 1.0
    for _ in range(5):
        change = shaper.throttled(rcpt_throttle("a@example.org"), "a@example.org", limits, 0.0)
    assert change is not None and change.per_minute == 0.5


def test_a_throttle_with_no_measured_rate_only_backs_off():
    shaper = Shaper()
    shaper.sent("a@example.org", 0.0)
    assert shaper.throttled(rcpt_throttle("a@example.org"), "a@example.org", UNLIMITED, 1.0) is None
    assert shaper.effective(ACCOUNT, UNLIMITED) is None


def test_a_provider_throttle_slows_only_that_provider():
    shaper = Shaper()
    now = send_n(shaper, "a@gmail.com", 20, 0.0, 1.0)
    change = shaper.throttled(rcpt_throttle("a@gmail.com"), "a@gmail.com", UNLIMITED, now)
    assert change is not None and change.destination == "gmail" and change.per_minute == 10.0
    assert shaper.wait("b@googlemail.com", UNLIMITED, now) > 0
    assert shaper.wait("c@example.org", UNLIMITED, now) == 0
    # The next row of a batch: the first one not held by a throttled provider.
    assert shaper.pick(["d@gmail.com", "e@example.org", "f@gmail.com"], UNLIMITED, now) == 1
    assert shaper.pick(["d@gmail.com"], UNLIMITED, now) == 0


def temp(address: str, text: str = "4.2.0 <{}>: Recipient address rejected: Greylisted"):
    return classify_response(450, text.format(address), stage="rcpt", recipient=address)


def test_the_same_temporary_failure_for_different_recipients_is_a_storm():
    detector = StormDetector(threshold=3)
    assert detector.failed(1, "a@example.org", temp("a@example.org")) is None
    assert detector.failed(2, "a@example.org", temp("a@example.org")) is None  # same address
    assert detector.failed(3, "b@example.org", temp("b@example.org")) is None
    assert detector.failed(4, "c@example.org", temp("c@example.org")) == [1, 3, 4]
    escalated = StormDetector.escalate(temp("c@example.org"), 3)
    assert isinstance(escalated, AccountError) and escalated.kind == "unavailable"
    assert escalated.code == 450 and "3 different recipients" in str(escalated)


def test_a_success_or_a_different_failure_breaks_the_streak():
    detector = StormDetector(threshold=2)
    detector.failed(1, "a@example.org", temp("a@example.org"))
    detector.succeeded()
    assert detector.failed(2, "b@example.org", temp("b@example.org")) is None
    other = temp("c@example.org", "4.2.2 <{}>: Mailbox busy")
    assert detector.failed(3, "c@example.org", other) is None
    assert detector.failed(4, "d@example.org", UnknownOutcomeError("lost")) is None
    assert detector.failed(5, "e@example.org", temp("e@example.org")) is None


def test_a_low_rate_climbs_after_a_stretch_of_time_not_only_after_many_sends():
    limits = Limits(10_000, None, 60)  # ceiling 1,000/min: steps of 50/min
    shaper = Shaper()
    now = send_n(shaper, "x@example.org", 4, 0.0, 15.0) - 1.0  # 4 sends in the last minute
    change = shaper.throttled(rcpt_throttle("x@example.org"), "x@example.org", limits, now)
    assert change is not None and change.per_minute == 2.0
    assert shaper.succeeded("x@example.org", limits, now + 10.0) == []  # too soon, too few
    [raised] = shaper.succeeded("x@example.org", limits, now + 31.0)
    assert raised.per_minute == 52.0
