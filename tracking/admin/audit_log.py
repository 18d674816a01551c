"""The audit log page: every change made through the console, newest first."""

from __future__ import annotations

from flask import request

from mailer.admin_audit import AdminAudit
from tracking.admin.core import bp, conn, render
from tracking.admin.paging import PAGE_SIZE, cursor_arg, page_of


@bp.get("/audit")
def audit_log() -> str:
    entries, next_cursor = page_of(
        AdminAudit(conn()).page(cursor_arg(), PAGE_SIZE + 1), lambda e: e.id
    )
    return render("audit.html", entries=entries, next_cursor=next_cursor, args=request.args)
