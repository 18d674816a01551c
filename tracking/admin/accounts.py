"""Accounts: the list (state, limits, usage, backoff, last error) and one account's page,
where limits are edited and the account paused or resumed (every change audited).
Credentials are never read here: the queries name their columns, none of them a secret."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, request, url_for

from mailer.account_admin import AccountAdmin
from mailer.console_queries import ConsoleQueries
from tracking.admin.core import audit, bp, conn, render
from tracking.admin.forms import SMTP_SECURITY, FormError, limits_from_form
from tracking.admin.paging import MAX_ID, PAGE_SIZE, cursor_arg, page_of

LIMIT_FIELDS = ("daily_limit", "hourly_limit", "min_delay_ms")


@bp.get("/accounts")
def accounts() -> str:
    found = ConsoleQueries(conn()).accounts(cursor=cursor_arg(), limit=PAGE_SIZE + 1)
    rows, next_cursor = page_of(found, lambda a: a["id"])
    return render("accounts.html", accounts=rows, next_cursor=next_cursor)


def account_row(account_id: int) -> dict[str, Any]:
    found = AccountAdmin(conn()).list(account_id) if account_id <= MAX_ID else []
    if not found:
        abort(404, "no such account")
    return found[0]


@bp.get("/accounts/<int:account_id>")
def account(account_id: int) -> str:
    return account_page(account_id)


def account_page(account_id: int, **extra: Any) -> str:
    """An account's page; ``extra``: ``error`` (a form's) or ``check`` (a check's report)."""
    row = account_row(account_id)
    usage = next(iter(ConsoleQueries(conn()).accounts(account_id=account_id)), None)
    return render("account.html", account=row, usage=usage, **({"error": None} | extra))


@bp.app_template_global()
def smtp_security_choices() -> tuple[str, ...]:
    return SMTP_SECURITY


@bp.post("/accounts/<int:account_id>/limits")
def set_limits(account_id: int) -> Response | tuple[str, int]:
    row = account_row(account_id)
    try:
        limits = limits_from_form(request.form)
    except FormError as exc:
        return account_page(account_id, error=str(exc)), 400
    AccountAdmin(conn()).set_limits(account_id, limits)
    before = {k: row[k] for k in LIMIT_FIELDS}
    audit(
        "account.set_limits", f"account {account_id} <{row['email']}>", before=before, after=limits
    )
    flash(f"Limits of {row['email']} saved: workers apply them within seconds.")
    return redirect(url_for("admin.account", account_id=account_id), 303)


@bp.post("/accounts/<int:account_id>/<any(pause, resume):action>")
def pause_resume(account_id: int, action: str) -> Response:
    row = account_row(account_id)
    paused = action == "pause"
    if AccountAdmin(conn()).set_paused(account_id, paused):
        after = {"status": "paused" if paused else "active"}
        target = f"account {account_id} <{row['email']}>"
        audit(f"account.{action}", target, before={"status": row["status"]}, after=after)
        flash(f"{row['email']} is now {after['status']}.")
    else:
        flash(f"{row['email']} is {row['status']}: nothing to {action}.")
    return redirect(url_for("admin.account", account_id=account_id), 303)
