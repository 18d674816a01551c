"""Schema migrations: apply ``sql/migrations/NNNN_*.sql`` once each, in order.

All pending migrations run in one transaction under a transaction-scoped advisory lock, so
``mailer db migrate`` is safe to run twice, or from two hosts at the same moment. Every run
also creates the coming week's day partitions of ``send_logs`` and ``email_events``.
"""

from __future__ import annotations

from mailer.db import Database
from mailer.sql_queries import migration_scripts, query


async def migrate(db: Database) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    applied: list[str] = []
    async with db.transaction() as conn:
        await conn.execute(query("migrations_lock"))
        await conn.execute(query("migrations_table"))
        cur = await conn.execute(query("applied_migrations"))
        done = {row["version"] for row in await cur.fetchall()}
        for version, name, sql in migration_scripts():
            if version in done:
                continue
            await conn.execute(sql)  # type: ignore[arg-type]  # trusted file shipped with Mailer
            await conn.execute(query("record_migration"), {"version": version, "name": name})
            applied.append(f"{version:04d}_{name}")
        await conn.execute(query("ensure_partitions"))  # the coming week's day partitions
    return applied


async def pending_migrations(db: Database) -> list[str]:
    """Migrations not yet applied; all of them on a fresh database."""
    present = await db.fetch_one("schema_exists")
    done: set[int] = set()
    if present and present["present"]:
        done = {row["version"] for row in await db.fetch_all("applied_migrations")}
    return [f"{v:04d}_{n}" for v, n, _ in migration_scripts() if v not in done]
