"""``mailer webhooks add|list|remove|enable|run``: outbound event webhooks."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from mailer.cli_context import Context, pass_ctx
from mailer.credentials import CredentialBox, secret_key
from mailer.db import Database
from mailer.status import to_json
from mailer.webhooks_out import EVENTS, WebhookError, WebhookManager


def _manager(ctx: Context, db: Database) -> WebhookManager:
    return WebhookManager(db, CredentialBox(secret_key(ctx.settings)))


@click.group("webhooks")
def webhooks() -> None:
    """Signed (Standard Webhooks) event deliveries to your HTTP endpoints."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--events",
    required=True,
    help="Comma-separated: " + ",".join(EVENTS) + ".",
)
@pass_ctx
def webhooks_add(ctx: Context, url: str, events: str) -> None:
    """Add an endpoint; prints its id and signing secret (shown only this once)."""
    try:
        created = ctx.run_db(lambda db: _manager(ctx, db).add(url, events))
    except WebhookError as exc:
        raise click.UsageError(str(exc)) from None
    endpoint = created.endpoint
    click.echo(f"webhook {endpoint.id} added: {endpoint.url} ({','.join(endpoint.events)})")
    click.echo(f"secret: {created.secret}")
    click.echo("Store the secret now: it is not shown again.")


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def webhooks_list(ctx: Context, as_json: bool) -> None:
    """Every endpoint: events, state (with the reason it was disabled), pending deliveries."""
    endpoints = ctx.run_db(lambda db: _manager(ctx, db).list())
    if as_json:
        click.echo(to_json([asdict(e) for e in endpoints]))
        return
    for e in endpoints:
        state = "enabled" if e.enabled else f"disabled: {e.disabled_reason}"
        failing = f", failing since {e.failing_since:%Y-%m-%d %H:%M}" if e.failing_since else ""
        click.echo(
            f"{e.id:>4}  {e.url}  events={','.join(e.events)}  {state}{failing}  "
            f"pending={e.pending}"
        )


@webhooks.command("remove")
@click.argument("endpoint_id", type=int)
@pass_ctx
def webhooks_remove(ctx: Context, endpoint_id: int) -> None:
    """Delete an endpoint and its undelivered events."""
    _change(ctx, endpoint_id, "remove", "removed")


@webhooks.command("enable")
@click.argument("endpoint_id", type=int)
@pass_ctx
def webhooks_enable(ctx: Context, endpoint_id: int) -> None:
    """Turn an automatically disabled endpoint back on (its pending events resume)."""
    _change(ctx, endpoint_id, "enable", "enabled")


def _change(ctx: Context, endpoint_id: int, method: str, done: str) -> None:
    """Call ``WebhookManager.<method>(endpoint_id)``; an unknown id exits 1."""
    if not ctx.run_db(lambda db: getattr(_manager(ctx, db), method)(endpoint_id)):
        raise click.ClickException(f"no webhook {endpoint_id}")
    click.echo(f"webhook {endpoint_id} {done}")


@webhooks.command("run")
@pass_ctx
def webhooks_run(ctx: Context) -> None:
    """Post due deliveries until stopped (what `mailer run` starts)."""
    from mailer.cli import run_until_signalled
    from mailer.webhook_sender import WebhookSender

    sys.exit(run_until_signalled(WebhookSender(ctx.settings, ctx.url), ctx.settings))
