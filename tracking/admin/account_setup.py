"""Account set-up through :class:`mailer.accounts.AccountManager` (the CLI's own domain
logic, on a short-lived async connection): add an account, edit its SMTP settings (the
password write-only), check its credentials, disable or enable it. Changes are audited;
a password only as "changed" or "kept"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from flask import Response, flash, redirect, request, url_for

from mailer.account_check import check_account
from mailer.account_validation import InvalidAccount
from mailer.accounts import AccountExists, AccountManager
from mailer.credentials import CredentialBox, secret_key
from mailer.db import Database
from mailer.suppressions import checked_email
from tracking.admin.accounts import account_page, account_row
from tracking.admin.core import audit, bp, render, user
from tracking.admin.forms import (
    FormError,
    display_name_from_form,
    limits_from_form,
    pool_from_form,
    smtp_from_form,
)
from tracking.state import services

T = TypeVar("T")
SMTP_FIELDS = ("smtp_host", "smtp_port", "smtp_security", "smtp_username")


def with_accounts(work: Callable[[AccountManager, CredentialBox], Awaitable[T]]) -> T:
    """Run ``work`` with an AccountManager on its own connection and the credential box."""
    box = CredentialBox(secret_key(services().settings))

    async def go() -> T:
        async with Database(services().store.url) as db:
            return await work(AccountManager(db), box)

    return asyncio.run(go())


def _target(row: dict[str, Any]) -> str:
    return f"account {row['id']} <{row['email']}>"


@bp.post("/accounts/<int:account_id>/smtp")
def set_smtp(account_id: int) -> Response | tuple[str, int]:
    """SMTP settings; the password is write-only (empty keeps the stored one)."""
    row = account_row(account_id)
    try:
        fields = smtp_from_form(request.form)
    except FormError as exc:
        return account_page(account_id, error=str(exc)), 400
    try:
        with_accounts(lambda m, box: m.edit_smtp(box, account_id, **fields))
    except InvalidAccount as exc:
        return account_page(account_id, error=str(exc)), 400
    after = {k: fields[k] for k in SMTP_FIELDS}
    after["password"] = "changed" if fields["password"] else "kept"  # never the value
    audit(
        "account.set_smtp", _target(row), before={k: row.get(k) for k in SMTP_FIELDS}, after=after
    )
    flash(f"SMTP settings of {row['email']} saved: its worker reconnects with them.")
    return redirect(url_for("admin.account", account_id=account_id), 303)


@bp.post("/accounts/<int:account_id>/check")
def check(account_id: int) -> str:
    """Connect, TLS, AUTH and QUIT (SMTP) or getProfile (Gmail), sending nothing."""
    account_row(account_id)

    async def run(m: AccountManager, box: CredentialBox) -> Any:
        return await check_account(await m.get(account_id), services().settings, box)

    return account_page(account_id, check=with_accounts(run))


@bp.post("/accounts/<int:account_id>/<any(disable, enable):action>")
def disable_enable(account_id: int, action: str) -> Response:
    row = account_row(account_id)
    status = "disabled" if action == "disable" else "active"
    reason = f"disabled in the console by {user().email}" if action == "disable" else None
    with_accounts(lambda m, _box: m.set_status(account_id, status, reason))
    audit(
        f"account.{action}",
        _target(row),
        before={"status": row["status"]},
        after={"status": status},
    )
    flash(f"{row['email']} is now {status}.")
    return redirect(url_for("admin.account", account_id=account_id), 303)


@bp.route("/accounts/new", methods=["GET", "POST"])
def new_account() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return render("account_new.html", error=None, form={})
    try:
        fields = new_account_fields(request.form) | smtp_from_form(request.form)
    except FormError as exc:
        return render("account_new.html", error=str(exc), form=request.form), 400
    return create_account("account_new.html", fields)


def create_account(template: str, fields: dict[str, Any], **secrets: str) -> Response | tuple:
    """Add the account (``secrets``: ``password`` or ``gmail_credentials``, stored
    encrypted, never audited), audit it and go to its page; or ``template`` again with
    what is wrong."""
    try:
        created = with_accounts(lambda m, box: m.add(box, **fields, **secrets))
    except (AccountExists, InvalidAccount) as exc:
        return render(template, error=str(exc), form=request.form), 400
    except psycopg.errors.UniqueViolation:  # added meanwhile by someone else
        error = f"an account {fields['email']} exists already"
        return render(template, error=error, form=request.form), 400
    shown = {k: v for k, v in fields.items() if k != "password"}
    audit("account.add", _target({"id": created.id, "email": created.email}), after=shown)
    flash(f"Account {created.email} added: the orchestrator starts its worker.")
    return redirect(url_for("admin.account", account_id=created.id), 303)


def new_account_fields(form: Any) -> dict[str, Any]:
    """The address, display name, pool and limits of a new account (any backend)."""
    try:
        email = checked_email(form.get("email", "")[:320])
    except ValueError as exc:
        raise FormError(str(exc)) from None
    return {
        "email": email,
        "display_name": display_name_from_form(form),
        "pool": pool_from_form(form),
    } | limits_from_form(form)
