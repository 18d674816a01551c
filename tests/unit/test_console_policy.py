"""The console's pure policies: login rate limits, passwords, form limits, the chart
series, CSV cells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailer.admin_users import LoginLimits, checked_password, login_allowed
from mailer.console_campaigns import csv_line
from tracking.admin.chart import MINUTES, minute_series, sends_chart
from tracking.admin.forms import FormError, limits_from_form

LIMITS = LoginLimits(per_email=5, per_ip=20, window_seconds=900)


def test_login_allowed_until_either_limit_is_reached():
    assert login_allowed(4, 19, LIMITS)
    assert not login_allowed(5, 0, LIMITS)
    assert not login_allowed(0, 20, LIMITS)


def test_passwords_need_twelve_characters_and_at_most_1024():
    assert checked_password("x" * 12) == "x" * 12
    for bad in ("x" * 11, "x" * 1025):
        with pytest.raises(ValueError):
            checked_password(bad)


def test_limits_form():
    form = {"daily_limit": " 10 ", "hourly_limit": "", "min_delay_ms": "0"}
    assert limits_from_form(form) == {"daily_limit": 10, "hourly_limit": None, "min_delay_ms": 0}
    for bad in (
        {"daily_limit": ""},
        {"daily_limit": "-1"},
        {"min_delay_ms": "1e3"},
        {"hourly_limit": str(2**31)},
    ):
        with pytest.raises(FormError):
            limits_from_form(form | bad)


def test_minute_series_places_each_minute_and_drops_older_ones():
    end = datetime(2026, 12, 1, 12, 30, 45, tzinfo=UTC)
    last = end.replace(second=0)
    rows = [(last, 3), (last - timedelta(minutes=1), 2), (last - timedelta(days=1), 99)]
    series = minute_series(rows, end)
    assert len(series) == MINUTES and series[-1] == 3 and series[-2] == 2 and sum(series) == 5
    chart = sends_chart(rows, end)
    assert chart.peak == 3 and chart.total == 5 and len(chart.points.split()) == MINUTES


def test_csv_cells_cannot_be_formulas():
    assert csv_line(["=1+1", "+a", "-b", "@c", "ok", 3]) == "'=1+1,'+a,'-b,'@c,ok,3\r\n"
