"""``/suppressions``: pages and search, add, remove, and streamed CSV import/export."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Response, jsonify, request, stream_with_context

from mailer.email_requests import FieldError
from mailer.suppression_store import SuppressionStore
from mailer.suppressions import REASONS, SuppressionEntry, checked_email
from tracking.api.core import bp, conn, json_body, scope
from tracking.api.problems import ApiProblem, validation
from tracking.api.serialize import jsonable
from tracking.state import services

PAGE = 100


@bp.get("/suppressions")
@scope("read")
def list_suppressions() -> Response:
    reason = request.args.get("reason") or None
    if reason is not None and reason not in REASONS:
        raise validation([FieldError("/reason", f"must be one of {', '.join(REASONS)}")])
    cursor = request.args.get("cursor", "")
    search = request.args.get("search") or None
    if search is not None and ("\0" in search or len(search) > 320):
        raise validation([FieldError("/search", "must be at most 320 characters, no NUL")])
    rows = SuppressionStore(conn()).page(
        search=search,
        reason=reason,
        cursor=int(cursor) if cursor.isdigit() and len(cursor) < 19 else None,
        limit=PAGE + 1,
    )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return jsonify({"data": jsonable(rows), "next_cursor": rows[-1]["id"] if more else None})


@bp.get("/suppressions/<path:email>")
@scope("read")
def get_suppression(email: str) -> Response:
    found = SuppressionStore(conn()).get(email) if "\0" not in email else None
    if found is None:
        raise ApiProblem("not-found", f"{email!r} is not suppressed")
    return jsonify(jsonable(found))


@bp.post("/suppressions")
@scope("admin")
def add_suppressions() -> tuple[Response, int]:
    entries = _entries(json_body())
    changed = SuppressionStore(conn()).add(entries)
    return jsonify({"added": changed, "received": len(entries)}), 201


def _entries(body: object) -> list[SuppressionEntry]:
    items = body.get("suppressions") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= 1000:
        raise validation([FieldError("/suppressions", "must be an array of 1 to 1000 objects")])
    entries, errors = [], []
    for index, item in enumerate(items):
        try:
            entries.append(_entry(item))
        except ValueError as exc:
            errors.append(FieldError(f"/suppressions/{index}", str(exc)))
    if errors:
        raise validation(errors)
    return entries


def _entry(item: Any) -> SuppressionEntry:
    if not isinstance(item, dict) or not isinstance(item.get("email"), str):
        raise ValueError("must be an object with an email")
    if set(item) - {"email", "reason", "source", "expires_at"}:
        raise ValueError("has an unknown field")
    reason = item.get("reason") or "manual"
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    source = item.get("source")
    if source is not None and (not isinstance(source, str) or len(source) > 200 or "\0" in source):
        raise ValueError("source must be a string of at most 200 characters")
    return SuppressionEntry(
        checked_email(item["email"]), reason, source or "api", _expiry(item.get("expires_at"))
    )


def _expiry(raw: object) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not 1970 <= moment.year <= 9999:
        raise ValueError("expires_at must be an ISO 8601 time with a time zone")
    return moment


@bp.delete("/suppressions/<path:email>")
@scope("admin")
def remove_suppression(email: str) -> tuple[str, int]:
    if "\0" in email or not SuppressionStore(conn()).remove(email):
        raise ApiProblem("not-found", f"{email!r} is not suppressed")
    return "", 204


@bp.post("/suppressions/import")
@scope("admin")
def import_suppressions() -> Response:
    """A CSV body (``mailer suppress import`` format), read as a stream."""
    reason = request.args.get("reason") or "manual"
    if reason not in REASONS:
        raise validation([FieldError("/reason", f"must be one of {', '.join(REASONS)}")])
    lines = io.TextIOWrapper(request.stream, encoding="utf-8", errors="replace", newline="")
    report = SuppressionStore(conn()).import_csv(lines, reason=reason, source="api import")
    return jsonify(
        {
            "lines": report.lines,
            "added": report.changed,
            "invalid": report.invalid,
            "errors": list(report.errors),
        }
    )


@bp.get("/suppressions/export")
@scope("read")
def export_suppressions() -> Response:
    def rows() -> Iterator[str]:
        with services().store.connection() as export_conn:
            yield from SuppressionStore(export_conn).export_csv()

    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )
