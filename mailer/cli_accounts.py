"""``mailer accounts add|edit|remove|list|check|pause|resume|set-limits``: sender accounts.

Settings are checked (:mod:`mailer.account_validation`) before anything is written, so a
bad value is named on one line and burns no id; credentials are stored encrypted and never
printed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from mailer.account_validation import check_account
from mailer.cli_bounces import imap_fields, imap_options
from mailer.cli_context import Context, pass_ctx
from mailer.status import to_json


@click.group()
def accounts() -> None:
    """Sender accounts."""


@contextmanager
def account_errors() -> Iterator[None]:
    """The account manager's refusals as one-line CLI errors (exit 1)."""
    from mailer.account_validation import InvalidAccount
    from mailer.accounts import AccountExists, AccountInUse, AccountNotFound

    try:
        yield
    except (AccountNotFound, AccountExists, AccountInUse, InvalidAccount) as exc:
        raise click.ClickException(str(exc)) from None


def account_id_argument(fn: Any) -> Any:
    """The account as ACCOUNT_ID or as ``--account-id N`` (the form ``mailer worker``
    takes); passed to ``fn`` as ``account_id``."""

    @functools.wraps(fn)
    def wrapper(
        *args: Any, account_id: int | None, account_id_option: int | None, **kwargs: Any
    ) -> Any:
        chosen = account_id if account_id is not None else account_id_option
        if chosen is None:
            raise click.UsageError("give the account: ACCOUNT_ID or --account-id N")
        return fn(*args, account_id=chosen, **kwargs)

    wrapper = click.option(
        "--account-id",
        "account_id_option",
        type=int,
        default=None,
        help="The account, instead of ACCOUNT_ID.",
    )(wrapper)
    return click.argument("account_id", type=int, required=False)(wrapper)


def smtp_options(*, adding: bool) -> Any:
    """The SMTP connection options ``accounts add`` and ``accounts edit`` share (on edit,
    an option not given keeps the account's setting)."""

    def decorate(fn: Any) -> Any:
        options = [
            click.option("--smtp-host", default=None, help="Required for SMTP accounts."),
            click.option(
                "--smtp-port", type=int, default=None, help="Default: 587, 465 for tls, 25 for none"
            ),
            click.option("--smtp-username", "--username", "smtp_username", default=None),
            click.option(
                "--smtp-password",
                "--password",
                "smtp_password",
                default=None,
                envvar="MAILER_SMTP_PASSWORD",
                help="Stored encrypted. Prefer the env var or the prompt to the command line.",
            ),
            click.option(
                "--prompt-password", is_flag=True, help="Ask for the password on the terminal."
            ),
            click.option(
                "--smtp-security",
                type=click.Choice(["starttls", "tls", "none"]),
                default="starttls" if adding else None,
            ),
            click.option(
                "--ehlo-hostname",
                default=None,
                help="Name said in EHLO for this account [default: MAILER_EHLO_HOSTNAME, "
                "else this host's fully qualified name].",
            ),
            click.option(
                "--tls-ca-file",
                "smtp_tls_ca_file",
                type=click.Path(exists=True, dir_okay=False, resolve_path=True),
                default=None,
                help="PEM file of the CA that signs the server's certificate (a private "
                "relay's); the system's CAs otherwise.",
            ),
            click.option(
                "--verp/--no-verp",
                default=None,
                help="Envelope sender names the row (news+b-<id>-<mac>@domain) so bounces "
                "match their row without the original Message-ID [default: off].",
            ),
            click.option(
                "--tls-verify/--tls-no-verify",
                "smtp_tls_verify",
                default=None,
                help="--tls-no-verify turns certificate checks off: discouraged (anyone on "
                "the path can read the mail and the password), logged at every connection; "
                "use --tls-ca-file.",
            ),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@accounts.command("add")
@click.option("--email", required=True, help="The From address.")
@click.option("--display-name", default=None)
@click.option(
    "--backend",
    type=click.Choice(["smtp", "gmail"]),
    default="smtp",
    help="SMTP server, or the Gmail API (needs --credentials-file).",
)
@smtp_options(adding=True)
@click.option(
    "--credentials-file",
    type=click.File("r"),
    default=None,
    help="Gmail: service-account JSON (domain-wide delegation) or authorized-user JSON; "
    "'-' reads stdin. Stored encrypted.",
)
@click.option("--daily-limit", type=int, default=500)
@click.option("--hourly-limit", type=int, default=None)
@click.option("--min-delay-ms", type=int, default=1000)
@click.option("--pool", default="default")
@click.option("--paused", is_flag=True, help="Create the account paused.")
@imap_options
@pass_ctx
def accounts_add(
    ctx: Context,
    prompt_password: bool,
    paused: bool,
    smtp_password: str | None,
    credentials_file: Any,
    **fields: Any,
) -> None:
    """Add a sender account: SMTP (default) or Gmail API; with --imap-host, also the
    mailbox its bounces reach."""
    from mailer.accounts import AccountManager
    from mailer.credentials import CredentialBox, secret_key

    imap = imap_fields(fields)
    with account_errors():
        check_account({**fields, **imap})
    if not imap["imap_host"] and any(v is not None for v in imap.values()):
        raise click.UsageError("--imap-* options need --imap-host")
    if fields["backend"] == "gmail" and fields["verp"]:
        raise click.UsageError("--verp is for SMTP accounts (Gmail sets the envelope itself)")
    gmail_credentials = _gmail_credentials(fields, credentials_file)
    if fields["backend"] == "smtp" and not fields["smtp_host"]:
        raise click.UsageError("--smtp-host is required for an SMTP account")
    if prompt_password:
        smtp_password = click.prompt("SMTP password", hide_input=True)
    box = CredentialBox(secret_key(ctx.settings))
    fields["status"] = "paused" if paused else "active"
    _warn_tls_no_verify(fields.get("smtp_tls_verify"))

    async def add(db: Any) -> Any:
        manager = AccountManager(db)
        account = await manager.add(
            box, password=smtp_password, gmail_credentials=gmail_credentials, **fields
        )
        if imap["imap_host"]:
            account = await manager.set_imap(box, account.id, **imap)
        return account

    with account_errors():
        account = ctx.run_db(add)
    click.echo(
        f"added {'Gmail ' if account.backend == 'gmail' else ''}account {account.id} "
        f"<{account.email}> ({account.status}, pool {account.pool})"
    )


def _warn_tls_no_verify(verify: bool | None) -> None:
    if verify is False:
        click.echo(
            "warning: TLS certificate verification is off for this account; anyone on the "
            "path can read its mail and password. Prefer --tls-ca-file.",
            err=True,
        )


@accounts.command("edit")
@account_id_argument
@click.option("--display-name", default=None)
@click.option("--pool", default=None, help="Move the account to another pool.")
@click.option(
    "--credentials-file",
    type=click.File("r"),
    default=None,
    help="Gmail accounts: new service-account or authorized-user JSON ('-' reads stdin).",
)
@smtp_options(adding=False)
@imap_options
@click.option("--no-imap", is_flag=True, help="Remove the bounce mailbox settings.")
@click.option("--no-smtp-port", is_flag=True, help="Back to the default port.")
@click.option("--no-smtp-username", is_flag=True, help="No AUTH (removes the password too).")
@click.option("--no-ehlo-hostname", is_flag=True, help="Back to MAILER_EHLO_HOSTNAME.")
@click.option("--no-tls-ca-file", is_flag=True, help="Back to the system's CAs.")
@pass_ctx
def accounts_edit(
    ctx: Context,
    account_id: int,
    prompt_password: bool,
    smtp_password: str | None,
    no_imap: bool,
    **fields: Any,
) -> None:
    """Change an account's SMTP settings (host, port, security, username, password, EHLO
    name, TLS trust), its Gmail credentials, display name or pool, and its bounce mailbox
    (--imap-*, --no-imap); what is not given stays. The running worker reconnects with
    them within seconds."""
    from mailer.accounts import AccountManager
    from mailer.credentials import CredentialBox, secret_key

    clear = _cleared(fields)
    profile = {k: fields.pop(k) for k in ("display_name", "pool")}
    credentials_file = fields.pop("credentials_file")
    gmail_fields: dict[str, Any] = {"backend": "gmail"}
    gmail = _gmail_credentials(gmail_fields, credentials_file) if credentials_file else None
    imap = imap_fields(fields)
    with account_errors():
        check_account({**fields, **imap, **profile})
    changes = [*fields.values(), *imap.values(), *profile.values(), smtp_password, gmail]
    if not (clear or no_imap or prompt_password) and all(v is None for v in changes):
        raise click.UsageError("nothing to change: give a setting to change (see --help)")
    if prompt_password:
        smtp_password = click.prompt("SMTP password", hide_input=True)
    _warn_tls_no_verify(fields.get("smtp_tls_verify"))
    box = CredentialBox(secret_key(ctx.settings))

    async def edit(db: Any) -> Any:
        manager = AccountManager(db)
        account = await manager.edit_smtp(
            box, account_id, password=smtp_password, clear=clear, **fields
        )
        if gmail or any(v is not None for v in profile.values()):
            account = await manager.edit_profile(
                box,
                account_id,
                gmail_credentials=gmail,
                gmail_project=gmail_fields.get("gmail_project"),
                **profile,
            )
        if no_imap or any(v is not None for v in imap.values()):
            account = await manager.set_imap(box, account_id, clear=no_imap, **imap)
        return account

    with account_errors():
        _print_account(ctx.run_db(edit))


def _cleared(fields: dict[str, Any]) -> frozenset[str]:
    """Pop the ``--no-*`` flags; return the columns they set back to NULL."""
    flags = {
        "smtp_port": fields.pop("no_smtp_port"),
        "smtp_username": fields.pop("no_smtp_username"),
        "ehlo_hostname": fields.pop("no_ehlo_hostname"),
        "smtp_tls_ca_file": fields.pop("no_tls_ca_file"),
    }
    return frozenset(name for name, flag in flags.items() if flag)


def _print_account(account: Any) -> None:
    """What ``accounts edit`` shows afterwards (never a secret)."""
    summary = account_summary(account)
    shown = ", ".join(
        f"{k} {summary[k]}"
        for k in (
            "display_name",
            "pool",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "smtp_username",
            "ehlo_hostname",
            "smtp_tls_ca_file",
            "smtp_tls_verify",
            "verp",
        )
    )
    if account.backend == "gmail":
        shown += f", gmail_project {account.gmail_project}"
    click.echo(f"account {account.id} <{account.email}>: {shown}")
    click.echo(f"account {account.id} <{account.email}>: bounce mailbox {_mailbox(account)}")


@accounts.command("remove")
@account_id_argument
@pass_ctx
def accounts_remove(ctx: Context, account_id: int) -> None:
    """Delete an account. Its history stays (without it); refused while queued or sending
    rows are pinned to it (cancel them or pin them elsewhere first)."""
    from mailer.accounts import AccountManager

    with account_errors():
        email = ctx.run_db(lambda db: AccountManager(db).remove(account_id))
    click.echo(f"removed account {account_id} <{email}>")


def _mailbox(a: Any) -> str:
    """Where an account's bounces are read, without secrets."""
    if not a.imap_host:
        return "none"
    user = a.imap_username or a.smtp_username or a.email
    return f"{user}@{a.imap_host}:{a.imap_port or 'default'} ({a.imap_security})"


def _gmail_credentials(fields: dict[str, Any], credentials_file: Any) -> str | None:
    """The credentials file's text, checked (Gmail); sets ``fields["gmail_project"]``."""
    from mailer.gmail import GmailCredentials

    if fields["backend"] != "gmail":
        if credentials_file is not None:
            raise click.UsageError("--credentials-file is for --backend gmail")
        return None
    if credentials_file is None:
        raise click.UsageError("--backend gmail needs --credentials-file FILE (or - for stdin)")
    text = credentials_file.read()
    try:
        fields["gmail_project"] = GmailCredentials.parse(text).project
    except ValueError as exc:  # one line, exit 1, like every other account setting
        raise click.ClickException(f"--credentials-file: {exc}") from None
    return text


@accounts.command("check")
@account_id_argument
@pass_ctx
def accounts_check(ctx: Context, account_id: int) -> None:
    """Verify an account without sending (SMTP: connect, TLS, AUTH, QUIT; Gmail:
    getProfile). Exit 1 and say what failed."""
    from mailer.account_check import check_account
    from mailer.accounts import AccountManager
    from mailer.credentials import CredentialBox, secret_key

    with account_errors():
        account = ctx.run_db(lambda db: AccountManager(db).get(account_id))
    box = CredentialBox(secret_key(ctx.settings))
    report = asyncio.run(check_account(account, ctx.settings, box))
    for step in report.steps:
        click.echo(f"{'ok' if step.ok else 'FAILED':>6}  {step.name}: {step.detail}")
    if not report.ok:
        raise click.ClickException(f"account {account.id} <{account.email}> does not work")
    click.echo(f"account {account.id} <{account.email}> works")


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def accounts_list(ctx: Context, as_json: bool) -> None:
    """List accounts (credentials are never shown)."""
    from mailer.accounts import AccountManager

    rows = ctx.run_db(lambda db: AccountManager(db).list())
    public = [account_summary(a) for a in rows]
    if as_json:
        click.echo(to_json(public))
        return
    click.echo(
        f"{'id':>4}  {'email':<32} {'status':<10} {'pool':<10} {'daily':>7} "
        f"{'hourly':>7} {'delay ms':>9}  last error"
    )
    for a in public:
        click.echo(
            f"{a['id']:>4}  {a['email']:<32} {a['status']:<10} {a['pool']:<10} "
            f"{a['daily_limit']:>7} {a['hourly_limit'] or '-':>7} "
            f"{a['min_delay_ms']:>9}  {a['last_error'] or ''}"
        )


def account_summary(account: Any) -> dict[str, Any]:
    """An account's public fields: everything but credentials."""
    keys = (
        "id",
        "email",
        "display_name",
        "backend",
        "status",
        "pool",
        "daily_limit",
        "hourly_limit",
        "min_delay_ms",
        "smtp_host",
        "smtp_port",
        "smtp_username",
        "smtp_security",
        "ehlo_hostname",
        "smtp_tls_ca_file",
        "smtp_tls_verify",
        "verp",
        "imap_host",
        "imap_port",
        "imap_security",
        "imap_username",
        "gmail_project",
        "last_error",
        "backoff_until",
    )
    return {k: getattr(account, k) for k in keys}


def _set_status(ctx: Context, account_id: int, status: str, reason: str | None) -> None:
    from mailer.accounts import AccountManager

    with account_errors():
        account = ctx.run_db(lambda db: AccountManager(db).set_status(account_id, status, reason))
    click.echo(f"account {account.id} <{account.email}> is {account.status}")


@accounts.command("pause")
@account_id_argument
@click.option("--reason", default="paused by operator")
@pass_ctx
def accounts_pause(ctx: Context, account_id: int, reason: str) -> None:
    """Pause an account: its worker stops within seconds; its rows wait or go to its pool."""
    _set_status(ctx, account_id, "paused", reason)


@accounts.command("resume")
@account_id_argument
@pass_ctx
def accounts_resume(ctx: Context, account_id: int) -> None:
    """Make a paused or suspended account active again (clears its error and backoff)."""
    _set_status(ctx, account_id, "active", None)


@accounts.command("set-limits")
@account_id_argument
@click.option("--daily-limit", type=int, default=None)
@click.option("--hourly-limit", type=int, default=None)
@click.option("--no-hourly-limit", is_flag=True, help="Remove the hourly limit.")
@click.option("--min-delay-ms", type=int, default=None)
@pass_ctx
def accounts_set_limits(
    ctx: Context,
    account_id: int,
    daily_limit: int | None,
    hourly_limit: int | None,
    no_hourly_limit: bool,
    min_delay_ms: int | None,
) -> None:
    """Change limits; the running worker applies them within 5 seconds."""
    from mailer.accounts import AccountManager

    with account_errors():  # a negative limit: the manager's one line, as for `accounts add`
        a = ctx.run_db(
            lambda db: AccountManager(db).set_limits(
                account_id,
                daily_limit=daily_limit,
                hourly_limit=hourly_limit,
                clear_hourly=no_hourly_limit,
                min_delay_ms=min_delay_ms,
            )
        )
    click.echo(
        f"account {a.id}: daily {a.daily_limit}, hourly {a.hourly_limit or 'none'}, "
        f"min delay {a.min_delay_ms} ms"
    )
