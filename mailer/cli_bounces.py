"""``mailer bounces run|poll|list|show``: bounce and complaint mail, and what it changed.

Also the ``--imap-*`` options ``mailer accounts add`` and ``mailer accounts edit`` share.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from mailer.cli_context import Context, pass_ctx
from mailer.status import to_json

IMAP_SECURITY = ("tls", "starttls", "none")


def imap_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The bounce mailbox options, passed to ``fn`` as ``imap_*`` keyword arguments."""
    options = [
        click.option("--imap-host", default=None, help="IMAP server of the bounce mailbox."),
        click.option(
            "--imap-port",
            type=click.IntRange(1, 65535),
            default=None,
            help="Default: 993 for tls, 143 otherwise.",
        ),
        click.option(
            "--imap-security",
            type=click.Choice(IMAP_SECURITY),
            default=None,
            help="tls (implicit, the default), starttls or none.",
        ),
        click.option(
            "--imap-username", default=None, help="Default: the SMTP username, else the email."
        ),
        click.option(
            "--imap-password",
            default=None,
            envvar="MAILER_IMAP_PASSWORD",
            help="Stored encrypted. Prefer the env var to the command line.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def imap_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Pop the ``imap_*`` options out of a command's keyword arguments."""
    return {k: fields.pop(k) for k in list(fields) if k.startswith("imap_")}


@click.group("bounces")
def bounces() -> None:
    """Bounce and complaint reports read from the accounts' mailboxes."""


@bounces.command("run")
@pass_ctx
def bounces_run(ctx: Context) -> None:
    """Poll every bounce mailbox every MAILER_BOUNCE_POLL_SECONDS (what `mailer run` starts)."""
    from mailer.bounces.reader import BounceReader
    from mailer.cli import run_until_signalled

    sys.exit(run_until_signalled(BounceReader(ctx.settings, ctx.url), ctx.settings))


@bounces.command("poll")
@click.option("--account-id", type=int, default=None, help="Only this account's mailbox.")
@pass_ctx
def bounces_poll(ctx: Context, account_id: int | None) -> None:
    """Read the bounce mailboxes once, now."""
    from mailer.bounces.reader import poll_all

    results = ctx.run_db(lambda db: poll_all(db, ctx.settings, account_id=account_id))
    for r in results:
        state = f"error: {r.error}" if r.error else "ok"
        click.echo(
            f"account {r.account_id}: {r.applied} applied, {r.duplicates} already applied, "
            f"{r.untouched} left untouched ({state})"
        )
    if any(r.error for r in results):
        sys.exit(1)


@bounces.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, help="Most recent reports.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def bounces_list(ctx: Context, limit: int, as_json: bool) -> None:
    """Recent reports: one line per recipient, with what was decided and the queue row."""
    from mailer.bounces.records import BounceManager

    lines = ctx.run_db(lambda db: BounceManager(db, ctx.settings).list(limit))
    if as_json:
        click.echo(to_json([line.__dict__ for line in lines]))
        return
    click.echo(
        f"{'id':>6}  {'received':<16}  {'account':<24} {'address':<32} {'status':<7} "
        f"{'decision':<12} row"
    )
    for b in lines:
        click.echo(
            f"{b.id:>6}  {b.received_at:%Y-%m-%d %H:%M}  {b.account_email or '-':<24} "
            f"{b.address or '-':<32} {b.status or '-':<7} {b.decision or b.kind:<12} "
            f"{b.queue_id or '-'}"
        )


@bounces.command("show")
@click.argument("bounce_id", type=int)
@pass_ctx
def bounces_show(ctx: Context, bounce_id: int) -> None:
    """One report: what was decided, then the raw message as received."""
    from mailer.bounces.records import BounceManager

    record = ctx.run_db(lambda db: BounceManager(db, ctx.settings).get(bounce_id))
    if record is None:
        raise click.ClickException(f"no bounce report with id {bounce_id}")
    click.echo(f"report {record.id}: {record.kind} {record.report_key}")
    click.echo(
        f"received {record.received_at.isoformat()} in the mailbox of account "
        f"{record.account_id} <{record.account_email}> (message {record.mailbox_ref})"
    )
    click.echo(f"subject: {record.subject or ''}")
    for d in record.decisions:
        suppressed = d["suppression"] or "not suppressed"
        click.echo(
            f"  {d['address']}: {d['kind']} {d['status'] or ''} (row {d['queue_id'] or '-'}, "
            f"{suppressed}) {d['diagnostic'] or ''}".rstrip()
        )
    click.echo("undo a false positive with: mailer suppress remove ADDRESS")
    click.echo("-" * 72)
    click.echo(record.raw.decode("utf-8", "replace"))
