"""The overview (``/admin/``) and the JSON its page polls (``/admin/overview.json``)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, jsonify, request

from mailer.console_queries import ConsoleQueries
from tracking.admin.chart import Chart, sends_chart
from tracking.admin.core import bp, conn, render
from tracking.admin.snapshots import snapshots


@bp.get("/")
def overview() -> str:
    data = ConsoleQueries(conn()).overview(snapshots())
    chart = sends_chart(data.sends_per_minute, datetime.now(UTC))
    return render("overview.html", data=data, chart=chart, caption=caption(chart))


@bp.get("/overview.json")
def overview_json() -> Response:
    """The live counters: queue by state (finished states as of ``counted_at``), sends in
    the last minute and hour; with
    ``?chart=1`` also the chart's points and caption (the page asks every 30 s)."""
    queries = ConsoleQueries(conn())
    now = datetime.now(UTC)
    body: dict[str, object] = queries.live(snapshots()) | {"at": now.isoformat(timespec="seconds")}
    if request.args.get("chart") == "1":
        chart = sends_chart(queries.sends_per_minute(), now)
        body |= {"chart_points": chart.points, "chart_caption": caption(chart)}
    return jsonify(body)


def caption(chart: Chart) -> str:
    return (
        f"{chart.total} sends; busiest minute {chart.peak}; "
        f"{chart.start:%Y-%m-%d %H:%M} to {chart.end:%H:%M} UTC"
    )
