"""Operations: ``GET /healthz`` (the process answers), ``GET /readyz`` (the database
answers and every migration is applied) and ``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

import json

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mailer.sql_queries import migration_scripts
from tracking.state import services
from tracking.store import DATABASE_ERRORS, run

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    """200 when the database answers and its schema is current, else 503 saying why."""
    try:
        with services().store.connection() as conn:
            present = run(conn, "schema_exists")[0]["present"]
            applied = {r["version"] for r in run(conn, "applied_migrations")} if present else set()
    except DATABASE_ERRORS as exc:
        return _ready(False, f"database unavailable: {type(exc).__name__}")
    missing = [f"{v:04d}_{n}" for v, n, _ in migration_scripts() if v not in applied]
    if missing:
        return _ready(False, "pending migrations: " + ", ".join(missing))
    return _ready(True, "ready")


def _ready(ok: bool, detail: str) -> Response:
    return Response(
        json.dumps({"ready": ok, "detail": detail}) + "\n",
        status=200 if ok else 503,
        mimetype="application/json",
    )


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(services().registry), mimetype=CONTENT_TYPE_LATEST)
