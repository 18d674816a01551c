"""Accounts: the list (state, limits, usage, backoff, last error) and one account's page,
where limits are edited and the account paused or resumed (every change audited).
Credentials are never read here: the queries name their columns, none of them a secret."""

from __future__ import annotations

import asyncio
from typing import Any

from flask import Response, abort, flash, redirect, request, url_for

from mailer.account_admin import AccountAdmin
from mailer.accounts import AccountManager
from mailer.console_queries import ConsoleQueries
from mailer.credentials import CredentialBox, secret_key
from mailer.db import Database
from tracking.admin.core import audit, bp, conn, render
from tracking.admin.forms import SMTP_SECURITY, FormError, limits_from_form, smtp_from_form
from tracking.admin.paging import MAX_ID, PAGE_SIZE, cursor_arg, page_of
from tracking.state import services

LIMIT_FIELDS = ("daily_limit", "hourly_limit", "min_delay_ms")
SMTP_FIELDS = ("smtp_host", "smtp_port", "smtp_security", "smtp_username")


@bp.get("/accounts")
def accounts() -> str:
    found = ConsoleQueries(conn()).accounts(cursor=cursor_arg(), limit=PAGE_SIZE + 1)
    rows, next_cursor = page_of(found, lambda a: a["id"])
    return render("accounts.html", accounts=rows, next_cursor=next_cursor)


def _account(account_id: int) -> dict[str, Any]:
    found = AccountAdmin(conn()).list(account_id) if account_id <= MAX_ID else []
    if not found:
        abort(404, "no such account")
    return found[0]


@bp.get("/accounts/<int:account_id>")
def account(account_id: int) -> str:
    row = _account(account_id)
    usage = next(iter(ConsoleQueries(conn()).accounts(account_id=account_id)), None)
    return render("account.html", account=row, usage=usage, error=None)


@bp.app_template_global()
def smtp_security_choices() -> tuple[str, ...]:
    return SMTP_SECURITY


@bp.post("/accounts/<int:account_id>/limits")
def set_limits(account_id: int) -> Response | tuple[str, int]:
    row = _account(account_id)
    try:
        limits = limits_from_form(request.form)
    except FormError as exc:
        return render("account.html", account=row, usage=None, error=str(exc)), 400
    AccountAdmin(conn()).set_limits(account_id, limits)
    before = {k: row[k] for k in LIMIT_FIELDS}
    audit(
        "account.set_limits", f"account {account_id} <{row['email']}>", before=before, after=limits
    )
    flash(f"Limits of {row['email']} saved: workers apply them within seconds.")
    return redirect(url_for("admin.account", account_id=account_id), 303)


@bp.post("/accounts/<int:account_id>/smtp")
def set_smtp(account_id: int) -> Response | tuple[str, int]:
    """SMTP settings; the password is write-only (empty keeps the stored one)."""
    row = _account(account_id)
    try:
        fields = smtp_from_form(request.form)
    except FormError as exc:
        return render("account.html", account=row, usage=None, error=str(exc)), 400
    settings = services().settings
    box = CredentialBox(secret_key(settings))

    async def edit() -> None:
        async with Database(services().store.url) as db:
            await AccountManager(db).edit_smtp(box, account_id, **fields)

    asyncio.run(edit())
    before = {k: row.get(k) for k in SMTP_FIELDS}
    after = {k: fields[k] for k in SMTP_FIELDS}
    after["password"] = "changed" if fields["password"] else "kept"  # never the value
    audit("account.set_smtp", f"account {account_id} <{row['email']}>", before=before, after=after)
    flash(f"SMTP settings of {row['email']} saved: its worker reconnects with them.")
    return redirect(url_for("admin.account", account_id=account_id), 303)


@bp.post("/accounts/<int:account_id>/<any(pause, resume):action>")
def pause_resume(account_id: int, action: str) -> Response:
    row = _account(account_id)
    paused = action == "pause"
    if AccountAdmin(conn()).set_paused(account_id, paused):
        after = {"status": "paused" if paused else "active"}
        target = f"account {account_id} <{row['email']}>"
        audit(f"account.{action}", target, before={"status": row["status"]}, after=after)
        flash(f"{row['email']} is now {after['status']}.")
    else:
        flash(f"{row['email']} is {row['status']}: nothing to {action}.")
    return redirect(url_for("admin.account", account_id=account_id), 303)
