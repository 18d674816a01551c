"""Suppressions (search, add, remove after a confirmation, CSV import and export) and the
bounce reports (list, raw report). Every change is audited."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from flask import Response, abort, flash, redirect, request, stream_with_context, url_for

from mailer.console_queries import ConsoleQueries
from mailer.suppression_store import SuppressionStore
from mailer.suppressions import REASONS, SuppressionEntry, checked_email
from tracking.admin.core import audit, bp, conn, render, user
from tracking.admin.paging import MAX_ID, PAGE_SIZE, cursor_arg, page_of, text_arg
from tracking.state import services


@bp.get("/suppressions")
def suppressions() -> str:
    search, reason = text_arg("search"), text_arg("reason")
    found = SuppressionStore(conn()).page(
        search=search, reason=reason, cursor=cursor_arg(), limit=PAGE_SIZE + 1
    )
    rows, next_cursor = page_of(found, lambda r: r["id"])
    return render(
        "suppressions.html",
        rows=rows,
        args={"search": search or "", "reason": reason or ""},
        next_cursor=next_cursor,
        reasons=REASONS,
    )


@bp.post("/suppressions/add")
def add_suppression() -> Response:
    reason = request.form.get("reason", "manual")
    if reason not in REASONS:
        abort(400, f"reason must be one of {', '.join(REASONS)}")
    try:
        email = checked_email(request.form.get("email", "")[:320])
    except ValueError as exc:
        abort(400, str(exc))
    entry = SuppressionEntry(email, reason, f"console: {_actor()}")
    SuppressionStore(conn()).add([entry])
    audit("suppression.add", email, after={"reason": reason})
    flash(f"{email} is suppressed ({reason}).")
    return redirect(url_for("admin.suppressions", search=email), 303)


@bp.get("/suppressions/remove")
def confirm_remove_suppression() -> str:
    row = _suppression(request.args.get("email", ""))
    return render("suppression_remove.html", row=row)


@bp.post("/suppressions/remove")
def remove_suppression() -> Response:
    row = _suppression(request.form.get("email", ""))
    if SuppressionStore(conn()).remove(row["email"]):
        before = {"reason": row["reason"], "source": row["source"]}
        audit("suppression.remove", row["email"], before=before)
        flash(f"{row['email']} is no longer suppressed.")
    return redirect(url_for("admin.suppressions"), 303)


def _suppression(email: str) -> dict[str, Any]:
    row = SuppressionStore(conn()).get(email.strip()[:320]) if email.strip() else None
    if row is None:
        abort(404, "no such suppression")
    return row


def _actor() -> str:
    return user().email


@bp.get("/suppressions/export.csv")
def export_suppressions() -> Response:
    app_services = services()

    def chunks() -> Iterator[str]:
        with app_services.store.connection() as own:
            yield from SuppressionStore(own).export_csv()

    return Response(
        stream_with_context(chunks()),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )


@bp.post("/suppressions/import")
def import_suppressions() -> Response:
    upload = request.files.get("file")
    reason = request.form.get("reason", "manual")
    if upload is None or reason not in REASONS:
        abort(400, "choose a CSV file and a reason")
    lines = io.TextIOWrapper(upload.stream, encoding="utf-8", errors="replace", newline="")
    source = f"console import: {_actor()}"
    report = SuppressionStore(conn()).import_csv(lines, reason=reason, source=source)
    after = {"lines": report.lines, "changed": report.changed, "invalid": report.invalid}
    audit("suppressions.import", upload.filename or "upload.csv", after=after)
    flash(
        f"Imported {upload.filename}: {report.lines} lines, {report.changed} added or "
        f"changed, {report.invalid} invalid. " + " ".join(report.errors[:5])
    )
    return redirect(url_for("admin.suppressions"), 303)


@bp.get("/bounces")
def bounces() -> str:
    return render("bounces.html", rows=ConsoleQueries(conn()).bounces(PAGE_SIZE))


@bp.get("/bounces/<int:bounce_id>")
def bounce(bounce_id: int) -> str:
    row = ConsoleQueries(conn()).bounce(bounce_id) if bounce_id <= MAX_ID else None
    if row is None:
        abort(404, "no such bounce report")
    return render("bounce.html", b=row)
