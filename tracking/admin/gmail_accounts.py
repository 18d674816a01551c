"""Gmail API accounts in the console: add one with its credentials file uploaded (a
service-account key with domain-wide delegation, or an authorized-user file), and change
its display name, pool or credentials. The file is checked as ``mailer accounts add
--backend gmail --credentials-file`` checks it, stored encrypted and write-only: never
shown, never audited (only "changed" or "kept", and the Cloud project it names)."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, request, url_for
from werkzeug.datastructures import FileStorage

from mailer.accounts import AccountManager
from mailer.credentials import CredentialBox
from mailer.gmail import GmailCredentials
from tracking.admin.account_setup import create_account, new_account_fields, with_accounts
from tracking.admin.accounts import account_page, account_row
from tracking.admin.core import audit, bp, render
from tracking.admin.forms import FormError, display_name_from_form, pool_from_form

#: A credentials file is a few KiB; anything much larger is not one.
MAX_CREDENTIALS_BYTES = 64 * 1024
PROFILE_FIELDS = ("display_name", "pool", "gmail_project")


def credentials_from_upload(upload: FileStorage | None) -> tuple[str, str] | None:
    """The uploaded credentials file's text and the project it names; None when no file
    was chosen. FormError says what is wrong (never quoting the file)."""
    if upload is None or not upload.filename:
        return None
    data = upload.stream.read(MAX_CREDENTIALS_BYTES + 1)
    if len(data) > MAX_CREDENTIALS_BYTES:
        raise FormError(f"the credentials file is larger than {MAX_CREDENTIALS_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        return text, GmailCredentials.parse(text).project
    except UnicodeDecodeError:
        raise FormError("the credentials file is not UTF-8 JSON") from None
    except ValueError as exc:
        raise FormError(str(exc)) from None


@bp.route("/accounts/new-gmail", methods=["GET", "POST"])
def new_gmail_account() -> Response | str | tuple[str, int]:
    """Add a Gmail API account; the credentials file is required."""
    if request.method == "GET":
        return render("account_new_gmail.html", error=None, form={})
    try:
        fields = new_account_fields(request.form)
        uploaded = credentials_from_upload(request.files.get("credentials_file"))
        if uploaded is None:
            raise FormError("choose the account's credentials file (JSON)")
    except FormError as exc:
        return render("account_new_gmail.html", error=str(exc), form=request.form), 400
    text, project = uploaded
    fields |= {"backend": "gmail", "gmail_project": project}
    return create_account("account_new_gmail.html", fields, gmail_credentials=text)


@bp.post("/accounts/<int:account_id>/gmail")
def set_gmail(account_id: int) -> Response | tuple[str, int]:
    """Display name, pool (empty: keep) and credentials (no file: keep)."""
    row = account_row(account_id)
    if row["backend"] != "gmail":
        return account_page(account_id, error="this is not a Gmail account"), 400
    try:
        profile = {
            "display_name": display_name_from_form(request.form),
            "pool": pool_from_form(request.form, default=None),
        }
        uploaded = credentials_from_upload(request.files.get("credentials_file"))
    except FormError as exc:
        return account_page(account_id, error=str(exc)), 400
    text, project = uploaded or (None, None)

    async def edit(m: AccountManager, box: CredentialBox) -> tuple[Any, Any]:
        before = await m.get(account_id)
        after = await m.edit_profile(
            box, account_id, gmail_credentials=text, gmail_project=project, **profile
        )
        return before, after

    before, after = with_accounts(edit)
    shown = {k: getattr(after, k) for k in PROFILE_FIELDS}
    shown["credentials"] = "changed" if text else "kept"  # never the file
    audit(
        "account.set_gmail",
        f"account {account_id} <{row['email']}>",
        before={k: getattr(before, k) for k in PROFILE_FIELDS},
        after=shown,
    )
    flash(f"Gmail settings of {row['email']} saved: its worker reconnects with them.")
    return redirect(url_for("admin.account", account_id=account_id), 303)
