"""When recurring sends fire: cron in a time zone, DST changes, the missed-occurrence policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailer.recurrence import (
    LABEL_SUFFIX,
    MAX_COUNTED,
    Recurrence,
    RecurrenceError,
    check_cron,
    check_recurrence,
    check_timezone,
    next_occurrence,
    occurrence_label,
    plan_due,
    previous_occurrence,
)

NEW_YORK = "America/New_York"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def walk(recurrence: Recurrence, start: datetime, count: int) -> list[str]:
    """``count`` occurrences after ``start`` as local wall times with their offsets."""
    found = []
    for _ in range(count):
        start = next_occurrence(recurrence, start)
        found.append(start.astimezone(recurrence.zone).strftime("%m-%d %H:%M%z"))
    return found


def test_a_daily_time_is_read_in_the_zone():
    paris = Recurrence("0 9 * * *", "Europe/Paris")
    assert next_occurrence(paris, utc(2026, 1, 15, 7, 59)) == utc(2026, 1, 15, 8, 0)  # CET
    assert next_occurrence(paris, utc(2026, 7, 15, 6, 59)) == utc(2026, 7, 15, 7, 0)  # CEST
    assert next_occurrence(paris, utc(2026, 7, 15, 7, 0)) == utc(2026, 7, 16, 7, 0)  # after


def test_spring_forward_runs_skipped_times_right_after_the_gap():
    daily = Recurrence("30 2 * * *", NEW_YORK)  # 02:30 does not exist on 2026-03-08
    assert walk(daily, utc(2026, 3, 7, 12), 3) == [
        "03-08 03:30-0400",
        "03-09 02:30-0400",
        "03-10 02:30-0400",
    ]
    quarterly = Recurrence("*/15 * * * *", NEW_YORK)
    assert walk(quarterly, utc(2026, 3, 8, 6, 30), 4) == [  # 01:30 EST
        "03-08 01:45-0500",
        "03-08 03:00-0400",  # the skipped hour's four collapse into the first instant after
        "03-08 03:15-0400",
        "03-08 03:30-0400",
    ]


def test_fall_back_runs_a_repeated_time_once():
    daily = Recurrence("30 1 * * *", NEW_YORK)  # 01:30 happens twice on 2026-11-01
    first = next_occurrence(daily, utc(2026, 10, 31, 12))
    assert first == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, the first of the two
    assert next_occurrence(daily, first) == utc(2026, 11, 2, 6, 30)  # next day, EST
    quarterly = Recurrence("*/15 * * * *", NEW_YORK)
    assert walk(quarterly, utc(2026, 11, 1, 5, 30), 3) == [
        "11-01 01:45-0400",
        "11-01 02:00-0500",  # the repeated hour is not run a second time
        "11-01 02:15-0500",
    ]


def test_inside_the_repeated_hour_the_next_occurrence_is_in_it_too():
    quarterly = Recurrence("*/15 * * * *", NEW_YORK)
    second_pass = utc(2026, 11, 1, 6, 10)  # 01:10 EST
    assert next_occurrence(quarterly, second_pass) == utc(2026, 11, 1, 6, 15)  # 01:15 EST


@pytest.mark.parametrize("change", [utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)])
def test_occurrences_always_move_forward_across_a_change(change):
    for cron in ("*/20 * * * *", "30 1 * * *", "0 2 * * 0", "@hourly", "*/7 1-3 * * *"):
        recurrence = Recurrence(cron, NEW_YORK)
        moment = change - timedelta(days=8)
        while moment < change + timedelta(days=8):
            following = next_occurrence(recurrence, moment)
            assert following > moment, cron
            moment = following


def test_ten_missed_ticks_queue_one_occurrence_the_latest():
    minutely = Recurrence("* * * * *", "UTC")
    plan = plan_due(minutely, utc(2026, 6, 1, 12, 0), utc(2026, 6, 1, 12, 9, 30))
    assert plan is not None
    assert plan.occurrence == utc(2026, 6, 1, 12, 9)
    assert plan.missed == 10
    assert plan.next_run_at == utc(2026, 6, 1, 12, 10)


def test_an_on_time_tick_queues_the_due_occurrence():
    daily = Recurrence("0 9 * * *", "Europe/Paris")
    plan = plan_due(daily, utc(2026, 6, 1, 7), utc(2026, 6, 1, 7, 0, 0, 200))
    assert plan is not None and (plan.occurrence, plan.missed) == (utc(2026, 6, 1, 7), 1)
    assert plan.next_run_at == utc(2026, 6, 2, 7)
    assert plan_due(daily, utc(2026, 6, 1, 7), utc(2026, 6, 1, 6, 59)) is None


def test_a_year_down_collapses_to_one_without_walking_every_minute():
    minutely = Recurrence("* * * * *", "Europe/Paris")
    now = utc(2026, 6, 1, 12, 0, 30)
    plan = plan_due(minutely, now - timedelta(days=365), now)
    assert plan is not None
    assert plan.occurrence == utc(2026, 6, 1, 12, 0)
    assert plan.missed == MAX_COUNTED  # "at least this many"
    assert plan.next_run_at == utc(2026, 6, 1, 12, 1)


def test_previous_occurrence_includes_the_minute_itself():
    hourly = Recurrence("0 * * * *", "UTC")
    assert previous_occurrence(hourly, utc(2026, 6, 1, 12, 0, 0)) == utc(2026, 6, 1, 12)
    assert previous_occurrence(hourly, utc(2026, 6, 1, 11, 59, 59)) == utc(2026, 6, 1, 11)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("", "empty"),
        ("* * * *", "five fields"),
        ("0 0 * * * *", "five fields"),  # seconds are not supported
        ("61 * * * *", "invalid cron expression"),
        ("@reboot", "unknown cron shorthand"),
        ("x" * 300, "longer than"),
        (None, "empty"),
    ],
)
def test_bad_cron_expressions_are_refused_with_the_reason(cron, message):
    with pytest.raises(RecurrenceError, match=message):
        check_cron(cron)


def test_cron_is_normalised():
    assert check_cron("  0   9 * *  1-5 ") == "0 9 * * 1-5"
    assert check_cron("@Daily") == "@daily"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", "utc+2", 5, None])
def test_unknown_time_zones_are_refused(zone):
    with pytest.raises(RecurrenceError, match="unknown time zone"):
        check_timezone(zone)


def test_an_expression_that_never_occurs_is_refused():
    with pytest.raises(RecurrenceError, match="never occurs"):
        check_recurrence("0 0 30 2 *", "UTC", NOW)
    assert check_recurrence("0 0 29 2 *", "UTC", NOW).cron == "0 0 29 2 *"


@pytest.mark.parametrize(
    ("instant", "zone", "label"),
    [
        (utc(2026, 12, 7, 8, 0), "Europe/Paris", "weekly-2026-12-07T09:00+01:00"),
        (utc(2026, 6, 1, 12, 0), "UTC", "weekly-2026-06-01T12:00+00:00"),
        (utc(2026, 3, 10, 4, 15), "Asia/Kathmandu", "weekly-2026-03-10T10:00+05:45"),
        # the repeated autumn hour: its two instants get two names
        (utc(2026, 11, 1, 5, 30), NEW_YORK, "weekly-2026-11-01T01:30-04:00"),
        (utc(2026, 11, 1, 6, 30), NEW_YORK, "weekly-2026-11-01T01:30-05:00"),
    ],
)
def test_an_occurrence_campaign_is_named_by_its_local_time(instant, zone, label):
    assert occurrence_label("weekly", instant, zone) == label
    assert len(label) == len("weekly") + LABEL_SUFFIX
