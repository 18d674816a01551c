"""The overview (``/admin/``) and the JSON its page polls (``/admin/overview.json``)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, jsonify

from mailer.console_queries import ConsoleQueries
from tracking.admin.chart import sends_chart
from tracking.admin.core import bp, conn, render


@bp.get("/")
def overview() -> str:
    data = ConsoleQueries(conn()).overview()
    chart = sends_chart(data.sends_per_minute, datetime.now(UTC))
    return render("overview.html", data=data, chart=chart)


@bp.get("/overview.json")
def overview_json() -> Response:
    """The live counters: queue by state, sends in the last minute and hour."""
    live = ConsoleQueries(conn()).live()
    return jsonify(live | {"at": datetime.now(UTC).isoformat()})
