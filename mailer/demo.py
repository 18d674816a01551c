"""``mailer demo``: the whole system on one machine, from nothing, in under a minute.

It recreates a dedicated ``mailer_demo`` database (on the embedded server unless
``DATABASE_URL`` names one), migrates it, starts a local SMTP sink, adds two demo accounts
with small limits, queues a few hundred emails with plain SQL, serves the tracking app (so
the emails' links work), runs the orchestrator until every row is settled, and prints
``mailer status`` and one received message, whose link and one-click unsubscribe it uses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import click
from psycopg.conninfo import make_conninfo

from mailer.accounts import AccountManager
from mailer.cli_context import Context
from mailer.credentials import CredentialBox, secret_key
from mailer.db import Database
from mailer.migrate import migrate
from mailer.sink import SinkServer, start_sink
from mailer.status import collect_status, format_status
from tracking.demo import start_demo_server, stop_demo_server, try_links

DEMO_DATABASE = "mailer_demo"
#: A fully qualified EHLO name for the demo accounts (the host's own name is often
#: ``localhost``, which the worker warns about: real servers may refuse it).
DEMO_EHLO_HOSTNAME = "mail.demo.example"
#: Two accounts sharing the default pool; small limits so the limits are visible.
DEMO_ACCOUNTS = (
    {
        "email": "news@demo.example",
        "display_name": "Demo Newsletter",
        "hourly_limit": 200,
        "daily_limit": 1000,
        "min_delay_ms": 20,
    },
    {
        "email": "shop@demo.example",
        "display_name": "Demo Shop",
        "hourly_limit": None,
        "daily_limit": 150,
        "min_delay_ms": 40,
    },
)


def run_demo(
    ctx: Context, *, emails: int, timeout: float, web_port: int | None = None, sink_port: int = 0
) -> int:
    """Run the demo; 0 when every queued email was sent. ``web_port`` None: MAILER_BASE_URL's
    port when free, else any free one."""
    server_url = ctx.server_url
    demo_url = make_conninfo(server_url, dbname=DEMO_DATABASE)
    sink_dir = Path(ctx.settings.home) / "sink"
    click.echo(
        f"database: {DEMO_DATABASE} (recreated) on "
        f"{'DATABASE_URL' if ctx.settings.database_url else 'embedded PostgreSQL'}"
    )
    with start_sink(port=sink_port, directory=sink_dir, quiet=True) as sink:
        click.echo(f"sink: SMTP on {sink.host}:{sink.port}, storing to {sink_dir}")
        asyncio.run(_prepare(ctx, server_url, demo_url, sink, emails))
        web = start_demo_server(ctx.settings, demo_url, port=web_port)
        click.echo(f"tracking app: {web.url} (opens, clicks, one-click unsubscribes)")
        try:
            ok = _run_orchestrator(ctx, demo_url, emails, timeout, web.url)
            received = sink.count
            newest = sorted(sink_dir.glob("*.eml"))[-1:]
            link_checks = try_links(newest[0]) if newest else []
        finally:
            stop_demo_server(web)
    report = asyncio.run(_status(demo_url))
    click.echo("\n" + format_status(report) + "\n")
    click.echo(f"the sink received {received} messages; newest: {_sample(sink_dir)}")
    for line in link_checks:
        click.echo(f"  {line}")
    return 0 if ok else 1


async def _prepare(
    ctx: Context, server_url: str, demo_url: str, sink: SinkServer, emails: int
) -> None:
    async with Database(server_url) as server:
        await server.execute("demo_drop_database")
        await server.execute("demo_create_database")
    async with Database(demo_url) as db:
        await migrate(db)
        box = CredentialBox(secret_key(ctx.settings))
        for spec in DEMO_ACCOUNTS:
            account = await AccountManager(db).add(
                box,
                smtp_host=sink.host,
                smtp_port=sink.port,
                smtp_security="none",
                ehlo_hostname=DEMO_EHLO_HOSTNAME,
                **spec,
            )
            click.echo(
                f"account {account.id}: {account.email}  daily {account.daily_limit}, "
                f"hourly {account.hourly_limit or '-'}, {account.min_delay_ms} ms apart"
            )
        await db.execute("demo_insert_emails", {"count": emails})
    click.echo(f"queued {emails} emails with one INSERT into email_queue")


def _run_orchestrator(
    ctx: Context, demo_url: str, emails: int, timeout: float, base_url: str
) -> bool:
    env = os.environ | {"DATABASE_URL": demo_url, "MAILER_BASE_URL": base_url}
    env.setdefault("MAILER_SECRET_KEY", secret_key(ctx.settings))
    click.echo("starting the orchestrator: mailer run")
    proc = subprocess.Popen([sys.executable, "-m", "mailer", "run"], env=env)
    try:
        return _watch(demo_url, emails, timeout, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=ctx.settings.shutdown_grace_seconds + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _watch(demo_url: str, emails: int, timeout: float, proc: subprocess.Popen[Any]) -> bool:
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while time.monotonic() < deadline and proc.poll() is None:
        counts = asyncio.run(_status(demo_url))["queue"]
        settled = emails - counts["queued"] - counts["sending"]
        click.echo(
            f"  {time.monotonic() - started:5.1f}s  sent {counts['sent']}  "
            f"queued {counts['queued']}  sending {counts['sending']}  "
            f"failed {counts['failed']}"
        )
        if settled >= emails:
            return counts["sent"] == emails
        time.sleep(1.0)
    click.echo("demo timed out before every email was sent", err=True)
    return False


async def _status(url: str) -> dict[str, Any]:
    async with Database(url) as db:
        return await collect_status(db)


def _sample(sink_dir: Path) -> str:
    files = sorted(sink_dir.glob("*.eml"))
    if not files:
        return "none"
    msg = BytesParser(policy=policy.default).parsebytes(files[-1].read_bytes())
    return f"{files[-1]}\n  From: {msg['From']}\n  To: {msg['To']}\n  Subject: {msg['Subject']}"
