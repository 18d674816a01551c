"""``mailer recurring add|list|remove|pause|resume|run``: recurring sends (a message, or a
campaign with ``--campaign-file``, queued on a cron expression in a time zone; see
:mod:`mailer.recurring`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TextIO, TypeVar

import click
import psycopg
from psycopg.rows import dict_row

from mailer.cli_context import Context, pass_ctx
from mailer.recurring import RecurringInvalid, RecurringNameTaken, RecurringSend, RecurringSends

T = TypeVar("T")


def _with_schedules(ctx: Context, work: Callable[[RecurringSends], T]) -> T:
    with psycopg.connect(ctx.url, autocommit=True, row_factory=dict_row) as conn:
        schedules = RecurringSends(conn, reject_special_use=ctx.settings.reject_special_use_domains)
        return work(schedules)


@click.group("recurring")
def recurring() -> None:
    """Recurring sends: a message queued on a cron expression, in a time zone."""


@recurring.command("add")
@click.argument("name")
@click.option("--cron", required=True, help="Five fields (m h dom mon dow) or @daily etc.")
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="IANA zone the expression is read in, e.g. Europe/Paris.",
)
@click.option(
    "--campaign-file",
    type=click.File("r", encoding="utf-8"),
    help="A recurring campaign instead of one email: a JSON file holding POST /campaigns' "
    "body (name, subject/html/text or template, variables, recipients...); each occurrence "
    "creates the campaign <name>-<occurrence local time> ('-' reads standard input).",
)
@click.option("--to", "to", help="Recipient address (required without --campaign-file).")
@click.option("--to-name", help="Recipient display name.")
@click.option("--subject", help="Subject (required without --template).")
@click.option("--html", help="HTML body.")
@click.option("--text", help="Plain-text body.")
@click.option("--template", help="Template name or id (instead of subject and bodies).")
@click.option("--variables", help="Template variables as a JSON object.")
@click.option("--campaign", help="Campaign label of every queued row.")
@click.option("--pool", help="Send through this pool's accounts.")
@click.option("--account", type=int, help="Send through this account id.")
@click.option("--paused", is_flag=True, help="Create it paused (resume it later).")
@pass_ctx
def recurring_add(
    ctx: Context,
    name: str,
    cron: str,
    timezone: str,
    paused: bool,
    campaign_file: TextIO | None,
    **email: Any,
) -> None:
    """Add a schedule NAME (one email, or a campaign with --campaign-file); prints when it
    first fires."""
    body: dict[str, Any] = {"name": name, "cron": cron, "timezone": timezone}
    body["enabled"] = not paused
    if campaign_file is not None:
        given = sorted(f"--{k.replace('_', '-')}" for k, v in email.items() if v is not None)
        if given:
            raise click.ClickException(f"--campaign-file replaces {', '.join(given)}")
        body |= {"kind": "campaign", "campaign": _campaign(campaign_file)}
    elif email["to"] is None:
        raise click.ClickException("--to (one email) or --campaign-file (a campaign) is required")
    else:
        body["email"] = _email(email)
    try:
        created = _with_schedules(ctx, lambda s: s.create(body))
    except (RecurringInvalid, RecurringNameTaken) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"recurring send {created.id} added: {created.name} ({_when(created)})")


def _email(options: dict[str, Any]) -> dict[str, Any]:
    """The email object of the options given (``--variables`` parsed)."""
    email = {k.replace("to_name", "name"): v for k, v in options.items() if v is not None}
    if "name" in email:
        email["to"] = {"email": email["to"], "name": email.pop("name")}
    if "variables" in email:
        try:
            email["variables"] = json.loads(email["variables"])
        except ValueError as exc:
            raise click.ClickException(f"--variables is not JSON: {exc}") from None
    return email


def _campaign(file: TextIO) -> Any:
    """The campaign body of ``--campaign-file``."""
    try:
        return json.load(file)
    except ValueError as exc:
        raise click.ClickException(f"--campaign-file is not JSON: {exc}") from None


def _when(s: RecurringSend) -> str:
    state = f"next {s.next_run_at:%Y-%m-%d %H:%M %Z}" if s.enabled else "paused"
    return f"{s.cron} in {s.timezone}, {state}"


@recurring.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def recurring_list(ctx: Context, as_json: bool) -> None:
    """Every schedule: expression, zone, next and last occurrence, last error."""
    schedules = _with_schedules(ctx, lambda s: _all(s))
    if as_json:
        click.echo(json.dumps([asdict(s) for s in schedules], indent=2, default=str))
        return
    for s in schedules:
        last = f"  last {s.last_run_at:%Y-%m-%d %H:%M %Z}" if s.last_run_at else ""
        error = f"  error: {s.last_error}" if s.last_error else ""
        click.echo(f"{s.id:>4}  {s.name}  {_when(s)}{last}{error}")


def _all(schedules: RecurringSends) -> list[RecurringSend]:
    found: list[RecurringSend] = []
    while page := schedules.list(cursor=found[-1].id if found else None, limit=200):
        found.extend(page)
    return found


@recurring.command("remove")
@click.argument("ref")
@pass_ctx
def recurring_remove(ctx: Context, ref: str) -> None:
    """Delete schedule REF (id or name); rows it already queued stay queued."""
    if not _with_schedules(ctx, lambda s: s.remove(ref)):
        raise click.ClickException(f"no recurring send {ref!r}")
    click.echo(f"recurring send {ref} removed")


@recurring.command("pause")
@click.argument("ref")
@pass_ctx
def recurring_pause(ctx: Context, ref: str) -> None:
    """Stop queueing schedule REF's occurrences."""
    _report(ref, _with_schedules(ctx, lambda s: s.pause(ref)))


@recurring.command("resume")
@click.argument("ref")
@pass_ctx
def recurring_resume(ctx: Context, ref: str) -> None:
    """Queue schedule REF's occurrences again, from the next one on."""
    _report(ref, _with_schedules(ctx, lambda s: s.resume(ref)))


def _report(ref: str, found: RecurringSend | None) -> None:
    if found is None:
        raise click.ClickException(f"no recurring send {ref!r}")
    click.echo(f"recurring send {found.id} {found.name}: {_when(found)}")


@recurring.command("run")
@pass_ctx
def recurring_run(ctx: Context) -> None:
    """Queue due occurrences until stopped, when elected (what `mailer run` starts)."""
    from mailer.cli import run_until_signalled
    from mailer.recurring_scheduler import RecurringScheduler

    sys.exit(run_until_signalled(RecurringScheduler(ctx.settings, ctx.url), ctx.settings))
