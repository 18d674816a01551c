"""The overview's sends-per-minute chart as an inline SVG polyline, drawn on the server
(no script, no chart library): one point per minute of the last 24 hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MINUTES = 24 * 60
WIDTH = MINUTES
HEIGHT = 120


@dataclass(frozen=True)
class Chart:
    points: str
    peak: int
    total: int
    start: datetime
    end: datetime


def minute_series(rows: list[tuple[datetime, int]], end: datetime) -> list[int]:
    """Sends per minute for the ``MINUTES`` minutes ending with ``end``'s minute, zero
    where ``rows`` (minute, sends) has none."""
    last = end.replace(second=0, microsecond=0)
    first = last - timedelta(minutes=MINUTES - 1)
    series = [0] * MINUTES
    for minute, sends in rows:
        index = int((minute - first).total_seconds() // 60)
        if 0 <= index < MINUTES:
            series[index] += int(sends)
    return series


def sends_chart(rows: list[tuple[datetime, int]], end: datetime) -> Chart:
    """The polyline's points (SVG user units, y down) scaled to the busiest minute."""
    series = minute_series(rows, end)
    peak = max(series)
    scale = (HEIGHT - 4) / peak if peak else 0
    points = " ".join(f"{x},{HEIGHT - 2 - round(v * scale, 1):g}" for x, v in enumerate(series))
    return Chart(points, peak, sum(series), end - timedelta(hours=24), end)
