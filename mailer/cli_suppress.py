"""``mailer suppress add|remove|list|import|export``: the addresses Mailer never sends to."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta

import click

from mailer.cli_context import Context, pass_ctx
from mailer.status import to_json
from mailer.suppressions import (
    REASONS,
    SuppressionEntry,
    SuppressionManager,
    checked_email,
    parse_csv,
    to_csv,
)


@click.group("suppress")
def suppress() -> None:
    """Suppressed addresses: bounced, complained, unsubscribed or added by hand."""


@suppress.command("add")
@click.argument("emails", nargs=-1, required=True)
@click.option("--reason", type=click.Choice(REASONS), default="manual")
@click.option("--source", default="cli", help="Where the suppression came from.")
@click.option(
    "--expires-in-hours",
    type=click.FloatRange(0, 24 * 366 * 100, min_open=True),
    default=None,
    help="Lift it after this long (default: never).",
)
@pass_ctx
def suppress_add(
    ctx: Context, emails: tuple[str, ...], reason: str, source: str, expires_in_hours: float | None
) -> None:
    """Never send to EMAILS."""
    try:
        checked = [checked_email(e) for e in emails]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAILS") from None
    if expires_in_hours is not None and math.isnan(expires_in_hours):
        raise click.BadParameter("must be a number of hours", param_hint="--expires-in-hours")
    expires = (
        datetime.now(UTC) + timedelta(hours=expires_in_hours)
        if expires_in_hours is not None
        else None
    )
    entries = [SuppressionEntry(e, reason, source, expires) for e in checked]
    changed = ctx.run_db(lambda db: SuppressionManager(db).add(entries))
    added = {r["email"].lower() for r in changed}
    for email in checked:
        state = "suppressed" if email.lower() in added else "already suppressed (kept)"
        click.echo(f"{email}: {state}")


@suppress.command("remove")
@click.argument("emails", nargs=-1, required=True)
@pass_ctx
def suppress_remove(ctx: Context, emails: tuple[str, ...]) -> None:
    """Send to EMAILS again."""
    removed = ctx.run_db(lambda db: SuppressionManager(db).remove(list(emails)))
    gone = {e.lower() for e in removed}
    for email in emails:
        click.echo(f"{email}: {'removed' if email.strip().lower() in gone else 'not suppressed'}")


@suppress.command("list")
@click.option("--reason", type=click.Choice(REASONS), default=None)
@click.option("--all", "include_expired", is_flag=True, help="Include expired ones.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def suppress_list(ctx: Context, reason: str | None, include_expired: bool, as_json: bool) -> None:
    """List suppressions in force."""
    rows = ctx.run_db(
        lambda db: SuppressionManager(db).list(reason=reason, include_expired=include_expired)
    )
    if as_json:
        click.echo(to_json(rows))
        return
    click.echo(f"{'email':<40} {'reason':<12} {'since':<17} {'until':<17} source")
    for r in rows:
        until = f"{r['expires_at']:%Y-%m-%d %H:%M}" if r["expires_at"] else "-"
        click.echo(
            f"{r['email']:<40} {r['reason']:<12} {r['created_at']:%Y-%m-%d %H:%M}  "
            f"{until:<17} {r['source'] or ''}"
        )
    click.echo(f"{len(rows)} suppressed")


@suppress.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option(
    "--reason", type=click.Choice(REASONS), default="manual", help="For rows without a reason."
)
@click.option("--source", default="import", help="For rows without a source.")
@pass_ctx
def suppress_import(ctx: Context, file: click.utils.LazyFile, reason: str, source: str) -> None:
    """Suppress the addresses of a CSV FILE ('-' for stdin): email[,reason,source,expires_at]."""
    try:
        text = file.read()
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{file.name} is not UTF-8 text ({exc.reason})") from None
    entries, errors = parse_csv(text, reason=reason, source=source)
    for error in errors:
        click.echo(f"skipped {error}", err=True)
    changed = ctx.run_db(lambda db: SuppressionManager(db).add(entries)) if entries else []
    click.echo(
        f"imported {len(changed)} of {len(entries)} addresses "
        f"({len(entries) - len(changed)} already suppressed, {len(errors)} invalid)"
    )
    if errors:
        sys.exit(1)


@suppress.command("export")
@click.argument("file", type=click.File("w", encoding="utf-8"), default="-")
@click.option("--reason", type=click.Choice(REASONS), default=None)
@click.option("--all", "include_expired", is_flag=True, help="Include expired ones.")
@pass_ctx
def suppress_export(
    ctx: Context, file: click.utils.LazyFile, reason: str | None, include_expired: bool
) -> None:
    """Write suppressions as CSV to FILE (default stdout)."""
    rows = ctx.run_db(
        lambda db: SuppressionManager(db).list(reason=reason, include_expired=include_expired)
    )
    file.write(to_csv(rows))
