"""The ``mailer`` command line (click). Every option also reads a ``MAILER_*`` variable.

Commands: ``db migrate|stop|url|prune``, ``accounts ...`` (:mod:`mailer.cli_accounts`),
``run`` (orchestrator), ``worker --account-id N``, ``web``, ``sink``, ``status``, ``demo``;
``suppress ...`` (:mod:`mailer.cli_suppress`), ``bounces ...`` (:mod:`mailer.cli_bounces`),
``dkim add|generate|list`` and ``dns-check`` (:mod:`mailer.cli_domains`), ``webhooks ...``
(:mod:`mailer.cli_webhooks`), ``recurring ...`` (:mod:`mailer.cli_recurring`),
``contacts export|erase`` (:mod:`mailer.cli_contacts`).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailer.cli_accounts import account_errors, accounts
from mailer.cli_admin import admin
from mailer.cli_api_keys import api_keys
from mailer.cli_bounces import bounces
from mailer.cli_contacts import contacts
from mailer.cli_context import Context, pass_ctx
from mailer.cli_domains import dkim, dns_check
from mailer.cli_errors import MailerGroup
from mailer.cli_recurring import recurring
from mailer.cli_suppress import suppress
from mailer.cli_webhooks import webhooks
from mailer.config import Settings, load_settings
from mailer.logs import setup_logging


@click.group(
    cls=MailerGroup, context_settings={"auto_envvar_prefix": "MAILER", "show_default": True}
)
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

    applied = ctx.run_db(migrate, schema=False)
    click.echo("applied: " + ", ".join(applied) if applied else "database is up to date")


@db.command("stop")
@click.option(
    "--force",
    is_flag=True,
    help="Stop it even while other live processes still use it (they lose their connections).",
)
@pass_ctx
def db_stop(ctx: Context, force: bool) -> None:
    """Stop the embedded PostgreSQL under MAILER_HOME (it outlives the commands using it).
    Refuses, naming them, while other live processes use it (unless --force)."""
    from mailer.embedded import stop_embedded_database

    if ctx.settings.database_url:
        raise click.ClickException("DATABASE_URL is set: Mailer does not manage that server")
    result = stop_embedded_database(ctx.settings.home, force=force)
    if result.stale_pids:
        click.echo(
            "dropped ended processes from its list of users: "
            + ", ".join(map(str, result.stale_pids)),
            err=True,
        )
    if result.pid is None:
        click.echo(f"no embedded PostgreSQL running in {ctx.settings.home}")
    else:
        click.echo(f"embedded PostgreSQL stopped (pid {result.pid})")


@db.command("url")
@pass_ctx
def db_url(ctx: Context) -> None:
    """Print the database URL in use (starting the embedded server if needed); on stderr,
    where the embedded server keeps its data (MAILER_HOME)."""
    if not ctx.settings.database_url:
        click.echo(f"MAILER_HOME: {ctx.settings.home}", err=True)
    click.echo(ctx.server_url)


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
    """Delete sent/failed/suppressed/cancelled rows, logs and events past retention:
    whole day partitions of logs and events, the rest in small batches that never lock
    out workers."""
    from mailer.prune import RetentionManager, parse_age

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    result = ctx.run_db(lambda db: RetentionManager(db, batch_size=batch_size).prune(age))
    parts = ", ".join(f"{n} {table}" for table, n in result.deleted.items())
    dropped = sum(result.partitions_dropped.values())
    click.echo(
        f"pruned before {result.cutoff.isoformat()}: {parts} ({result.batches} batches, "
        f"{dropped} day partitions dropped)"
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

    url = ctx.worker_url()  # the database first: a wrong one is the only line said
    if not ctx.settings.lock_held_by_parent:  # (the orchestrator's: an account gone is clean)
        _require_account(ctx, account_id)
    warn_if_not_fully_qualified(default_ehlo_hostname(ctx.settings))
    settings = ctx.settings.with_overrides(batch_size=batch_size)
    worker = Worker(settings, url, account_id)
    code = run_until_signalled(worker, settings, loop_factory=event_loop_factory())
    sys.exit(code)


def _require_account(ctx: Context, account_id: int) -> None:
    """A one-line error (exit 1) when no account has ``account_id``."""
    from mailer.accounts import AccountManager

    with account_errors():
        ctx.run_db(lambda db: AccountManager(db).get(account_id))


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
    """Run the orchestrator: one worker process per active account, the bounce reader, the
    webhook sender and the recurring-send scheduler."""
    from mailer.senders.smtp import warn_if_not_fully_qualified
    from orchestrator.supervisor import Orchestrator, default_companions

    url = ctx.url  # the database first: a wrong one is the only line said
    ctx.check_worker_url()
    warn_if_not_fully_qualified(default_ehlo_hostname(ctx.settings))
    service = Orchestrator(ctx.settings, url, companions=default_companions(ctx.settings))
    sys.exit(run_until_signalled(service, ctx.settings))


@main.command()
@click.option("--host", default="127.0.0.1", envvar="MAILER_WEB_HOST")
@click.option("--port", type=click.IntRange(0, 65535), default=8025, envvar="MAILER_WEB_PORT")
@click.option(
    "--routes",
    type=click.Choice(["tracking", "api", "admin", "all"]),
    default=None,
    help="What to serve: the public tracking routes, the HTTP API, the admin console "
    "(/admin) or all [MAILER_WEB_ROUTES, default all].",
)
@pass_ctx
def web(ctx: Context, host: str, port: int, routes: str | None) -> None:
    """Serve the tracking app, the HTTP API and/or the console (development server; use gunicorn in
    production, with MAILER_WEB_ROUTES choosing the routes)."""
    from tracking import create_app

    require_free_port(host, port)
    config = {"DATABASE_URL": ctx.url, "SETTINGS": ctx.settings, "WEB_ROUTES": routes}
    app = create_app(config)
    app.run(host=host, port=port)


@main.command()
@click.option("--host", default="127.0.0.1", envvar="MAILER_SINK_HOST")
@click.option("--port", type=click.IntRange(0, 65535), default=1025, envvar="MAILER_SINK_PORT")
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

    require_free_port(host, port)
    run_sink(host, port, directory or ctx.settings.home / "sink", discard, quiet)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Queue counts by status, each account's use of its limits and its host, the hosts,
    stranded rows."""
    from mailer.status import collect_status, format_status, to_json

    dead = ctx.settings.host_dead_seconds
    report = ctx.run_db(lambda db: collect_status(db, host_dead_seconds=dead))
    click.echo(to_json(report) if as_json else format_status(report))


def require_free_port(host: str, port: int, option: str = "--port") -> None:
    """Stop here, in one line naming the port and its holder, if it is taken."""
    from mailer.ports import port_in_use

    problem = port_in_use(host, port)
    if problem:
        raise click.ClickException(f"{problem}: choose another with {option}")


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
@click.option(
    "--web-port",
    type=click.IntRange(0, 65535),
    default=None,
    envvar="MAILER_DEMO_WEB_PORT",
    help="Port of the tracking app [default: MAILER_BASE_URL's (8025) when free, else any].",
)
@click.option(
    "--sink-port",
    type=click.IntRange(0, 65535),
    default=0,
    envvar="MAILER_DEMO_SINK_PORT",
    help="Port of the demo's SMTP sink (0: any free port).",
)
@pass_ctx
def demo(ctx: Context, emails: int, timeout: float, web_port: int | None, sink_port: int) -> None:
    """Embedded PostgreSQL, local sink, two demo accounts, a few hundred emails, sent.
    Its ports are checked before anything is created."""
    from mailer.demo import run_demo

    for option, port in (("--web-port", web_port), ("--sink-port", sink_port)):
        if port:
            require_free_port("127.0.0.1", port, option)
    if web_port is None:
        _note_busy_default_web_port(ctx.settings)
    sys.exit(run_demo(ctx, emails=emails, timeout=timeout, web_port=web_port, sink_port=sink_port))


def _note_busy_default_web_port(settings: Settings) -> None:
    from urllib.parse import urlsplit

    from mailer.ports import port_in_use

    port = urlsplit(settings.base_url).port
    problem = port_in_use("127.0.0.1", port) if port else None
    if problem:
        click.echo(f"note: {problem}; the tracking app takes a free port (or --web-port)", err=True)


main.add_command(accounts)
main.add_command(suppress)
main.add_command(api_keys)
main.add_command(admin)
main.add_command(bounces)
main.add_command(webhooks)
main.add_command(recurring)
main.add_command(contacts)
main.add_command(dkim)
main.add_command(dns_check)

if __name__ == "__main__":
    main()
