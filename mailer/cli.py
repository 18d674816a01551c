"""The ``mailer`` command line (click). Every option also reads a ``MAILER_*`` variable.

Commands: ``db migrate``, ``accounts add|edit|list|check|pause|resume|set-limits``,
``run`` (orchestrator), ``worker --account-id N``, ``web``, ``sink``, ``status``, ``demo``;
``suppress ...`` (:mod:`mailer.cli_suppress`), ``bounces ...`` (:mod:`mailer.cli_bounces`),
``dkim add|generate|list`` and ``dns-check`` (:mod:`mailer.cli_domains`), ``webhooks ...``
(:mod:`mailer.cli_webhooks`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailer.cli_api_keys import api_keys
from mailer.cli_bounces import bounces, imap_fields, imap_options
from mailer.cli_context import Context, pass_ctx
from mailer.cli_domains import dkim, dns_check
from mailer.cli_suppress import suppress
from mailer.cli_webhooks import webhooks
from mailer.config import Settings, load_settings
from mailer.logs import setup_logging


@click.group(context_settings={"auto_envvar_prefix": "MAILER", "show_default": True})
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log as text or one JSON object per line [env MAILER_LOG_FORMAT].",
)
@click.option("--log-level", default=None, help="Log level [env MAILER_LOG_LEVEL].")
@click.pass_context
def main(click_ctx: click.Context, log_format: str | None, log_level: str | None) -> None:
    """Mailer: email delivery from a PostgreSQL queue, within each account's limits."""
    try:
        settings = load_settings().with_overrides(log_format=log_format, log_level=log_level)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    setup_logging(settings.log_format, settings.log_level)
    click_ctx.obj = Context(settings)


# -- db -----------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@pass_ctx
def db_migrate(ctx: Context) -> None:
    """Apply pending migrations (safe to run twice, or from two hosts at once)."""
    from mailer.migrate import migrate

    applied = ctx.run_db(migrate)
    click.echo("applied: " + ", ".join(applied) if applied else "database is up to date")


@db.command("stop")
@pass_ctx
def db_stop(ctx: Context) -> None:
    """Stop the embedded PostgreSQL under MAILER_HOME (it outlives the commands using it)."""
    from mailer.db import stop_embedded_database

    if ctx.settings.database_url:
        raise click.ClickException("DATABASE_URL is set: Mailer does not manage that server")
    stopped = stop_embedded_database(ctx.settings.home)
    click.echo("embedded PostgreSQL stopped" if stopped else "no embedded PostgreSQL running")


@db.command("url")
@pass_ctx
def db_url(ctx: Context) -> None:
    """Print the database URL in use (starting the embedded server if needed)."""
    click.echo(ctx.url)


@db.command("prune")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Retention, e.g. 90d (units s, m, h, d, w).",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=5000, help="Rows deleted per transaction."
)
@pass_ctx
def db_prune(ctx: Context, older_than: str, batch_size: int) -> None:
    """Delete sent/failed/suppressed/cancelled rows, logs and events past retention,
    in small batches that never lock out workers."""
    from mailer.prune import RetentionManager, parse_age

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    result = ctx.run_db(lambda db: RetentionManager(db, batch_size=batch_size).prune(age))
    parts = ", ".join(f"{n} {table}" for table, n in result.deleted.items())
    click.echo(f"pruned before {result.cutoff.isoformat()}: {parts} ({result.batches} batches)")


# -- accounts -----------------------------------------------------------------------------


@main.group()
def accounts() -> None:
    """Sender accounts."""


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
    no_smtp_port: bool,
    no_smtp_username: bool,
    no_ehlo_hostname: bool,
    no_tls_ca_file: bool,
    no_imap: bool,
    **fields: Any,
) -> None:
    """Change an account's SMTP settings (host, port, security, username, password, EHLO
    name, TLS trust) and its bounce mailbox (--imap-*, --no-imap); what is not given
    stays. The running worker reconnects with them within seconds."""
    from mailer.accounts import AccountManager, AccountNotFound
    from mailer.credentials import CredentialBox, secret_key

    if prompt_password:
        smtp_password = click.prompt("SMTP password", hide_input=True)
    _warn_tls_no_verify(fields.get("smtp_tls_verify"))
    clear = {
        name
        for name, flag in (
            ("smtp_port", no_smtp_port),
            ("smtp_username", no_smtp_username),
            ("ehlo_hostname", no_ehlo_hostname),
            ("smtp_tls_ca_file", no_tls_ca_file),
        )
        if flag
    }
    imap = imap_fields(fields)
    changes = [*fields.values(), *imap.values(), smtp_password]
    if not clear and not no_imap and all(v is None for v in changes):
        raise click.UsageError("nothing to change: give a setting to change (see --help)")
    box = CredentialBox(secret_key(ctx.settings))

    async def edit(db: Any) -> Any:
        manager = AccountManager(db)
        account = await manager.edit_smtp(
            box, account_id, password=smtp_password, clear=frozenset(clear), **fields
        )
        if no_imap or any(v is not None for v in imap.values()):
            account = await manager.set_imap(box, account_id, clear=no_imap, **imap)
        return account

    try:
        account = ctx.run_db(edit)
    except AccountNotFound as exc:
        raise click.ClickException(str(exc)) from None
    summary = account_summary(account)
    shown = ", ".join(
        f"{k} {summary[k]}"
        for k in (
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
    click.echo(f"account {account.id} <{account.email}>: {shown}")
    click.echo(f"account {account.id} <{account.email}>: bounce mailbox {_mailbox(account)}")


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
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--credentials-file") from None
    return text


@accounts.command("check")
@account_id_argument
@pass_ctx
def accounts_check(ctx: Context, account_id: int) -> None:
    """Verify an account without sending (SMTP: connect, TLS, AUTH, QUIT; Gmail:
    getProfile). Exit 1 and say what failed."""
    from mailer.account_check import check_account
    from mailer.accounts import AccountManager, AccountNotFound
    from mailer.credentials import CredentialBox, secret_key

    try:
        account = ctx.run_db(lambda db: AccountManager(db).get(account_id))
    except AccountNotFound as exc:
        raise click.ClickException(str(exc)) from None
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
        click.echo(json.dumps(public, indent=2, default=str))
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
    from mailer.accounts import AccountManager, AccountNotFound

    try:
        account = ctx.run_db(lambda db: AccountManager(db).set_status(account_id, status, reason))
    except AccountNotFound as exc:
        raise click.ClickException(str(exc)) from None
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
    from mailer.accounts import AccountManager, AccountNotFound

    for name, value in (
        ("daily", daily_limit),
        ("hourly", hourly_limit),
        ("min-delay", min_delay_ms),
    ):
        if value is not None and value < 0:
            raise click.BadParameter(f"--{name} must be >= 0")
    try:
        a = ctx.run_db(
            lambda db: AccountManager(db).set_limits(
                account_id,
                daily_limit=daily_limit,
                hourly_limit=hourly_limit,
                clear_hourly=no_hourly_limit,
                min_delay_ms=min_delay_ms,
            )
        )
    except AccountNotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"account {a.id}: daily {a.daily_limit}, hourly {a.hourly_limit or 'none'}, "
        f"min delay {a.min_delay_ms} ms"
    )


# -- processes ----------------------------------------------------------------------------


@main.command()
@click.option(
    "--account-id",
    type=int,
    required=True,
    envvar="MAILER_ACCOUNT_ID",
    help="The sender account this worker sends for.",
)
@click.option("--batch-size", type=int, default=None, help="Rows per claim [MAILER_BATCH_SIZE].")
@pass_ctx
def worker(ctx: Context, account_id: int, batch_size: int | None) -> None:
    """Send for one account (what `mailer run` spawns). Exit 3: another worker has it."""
    from mailer.senders.smtp import warn_if_not_fully_qualified
    from mailer.worker import Worker, event_loop_factory

    warn_if_not_fully_qualified(default_ehlo_hostname(ctx.settings))
    settings = ctx.settings.with_overrides(batch_size=batch_size)
    worker = Worker(settings, ctx.url, account_id)
    code = run_until_signalled(worker, settings, loop_factory=event_loop_factory())
    sys.exit(code)


def default_ehlo_hostname(settings: Settings) -> str:
    """The EHLO name of accounts without their own: MAILER_EHLO_HOSTNAME or the host's."""
    import socket

    return settings.ehlo_hostname or socket.getfqdn()


def run_until_signalled(
    service: Any,
    settings: Settings,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """Run ``service.run()`` (in an event loop from ``loop_factory``, default asyncio's);
    SIGTERM/SIGINT call ``request_stop`` and, after ``service.stop_timeout`` (default: the
    shutdown grace period), cancel it. Returns its exit code."""

    async def go() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal() -> None:
            service.request_stop("signal received")
            grace = getattr(service, "stop_timeout", settings.shutdown_grace_seconds)
            loop.call_later(grace, task.cancel)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            return int(await service.run())
        except asyncio.CancelledError:
            return 0

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(go())


@main.command()
@pass_ctx
def run(ctx: Context) -> None:
    """Run the orchestrator: one worker process per active account, the bounce reader and
    the webhook sender."""
    from mailer.senders.smtp import warn_if_not_fully_qualified
    from orchestrator.supervisor import Orchestrator, default_companions

    warn_if_not_fully_qualified(default_ehlo_hostname(ctx.settings))
    service = Orchestrator(ctx.settings, ctx.url, companions=default_companions(ctx.settings))
    sys.exit(run_until_signalled(service, ctx.settings))


@main.command()
@click.option("--host", default="127.0.0.1", envvar="MAILER_WEB_HOST")
@click.option("--port", type=int, default=8025, envvar="MAILER_WEB_PORT")
@click.option(
    "--routes",
    type=click.Choice(["tracking", "api", "admin", "all"]),
    default=None,
    help="What to serve: the public tracking routes, the HTTP API, the admin console "
    "(not built yet) or all [MAILER_WEB_ROUTES, default all].",
)
@pass_ctx
def web(ctx: Context, host: str, port: int, routes: str | None) -> None:
    """Serve the tracking app and/or the HTTP API (development server; use gunicorn in
    production, with MAILER_WEB_ROUTES choosing the routes)."""
    from tracking import create_app

    config = {"DATABASE_URL": ctx.url, "SETTINGS": ctx.settings, "WEB_ROUTES": routes}
    app = create_app(config)
    app.run(host=host, port=port)


@main.command()
@click.option("--host", default="127.0.0.1", envvar="MAILER_SINK_HOST")
@click.option("--port", type=int, default=1025, envvar="MAILER_SINK_PORT")
@click.option(
    "--directory",
    type=click.Path(path_type=Path),
    default=None,
    envvar="MAILER_SINK_DIRECTORY",
    help="Where .eml files go [MAILER_HOME/sink].",
)
@click.option(
    "--discard",
    is_flag=True,
    envvar="MAILER_SINK_DISCARD",
    help="Accept and drop messages (benchmarks).",
)
@click.option(
    "--quiet", is_flag=True, envvar="MAILER_SINK_QUIET", help="Do not print a line per message."
)
@pass_ctx
def sink(
    ctx: Context, host: str, port: int, directory: Path | None, discard: bool, quiet: bool
) -> None:
    """Run a local SMTP server that stores what it receives as .eml files."""
    from mailer.sink import run_sink

    run_sink(host, port, directory or ctx.settings.home / "sink", discard, quiet)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Queue counts by status, each account's use of its limits, stranded rows."""
    from mailer.status import collect_status, format_status, to_json

    report = ctx.run_db(collect_status)
    click.echo(to_json(report) if as_json else format_status(report))


@main.command()
@click.option(
    "--emails",
    type=int,
    default=300,
    envvar="MAILER_DEMO_EMAILS",
    help="How many demo emails to queue.",
)
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    envvar="MAILER_DEMO_TIMEOUT",
    help="Give up after this many seconds.",
)
@pass_ctx
def demo(ctx: Context, emails: int, timeout: float) -> None:
    """Embedded PostgreSQL, local sink, two demo accounts, a few hundred emails, sent."""
    from mailer.demo import run_demo

    sys.exit(run_demo(ctx, emails=emails, timeout=timeout))


main.add_command(suppress)
main.add_command(api_keys)
main.add_command(bounces)
main.add_command(webhooks)
main.add_command(dkim)
main.add_command(dns_check)

if __name__ == "__main__":
    main()
