"""``mailer status``: queue counts by status, each account against its limits, and the
stranded rows: queued rows no worker will take as things stand, with the reason.

``--json`` prints :func:`collect_status` with :func:`to_json`: ``queue`` (counts by status,
plus ``stranded``), ``accounts`` (each with the ``host`` it is placed on, None when no
orchestrator has it), ``hosts`` (the orchestrators registered in ``worker_hosts``, with
``alive`` and their number of ``accounts``) and ``stranded`` (one object per account or
pool, see :class:`StrandedRows`); timestamps are ISO 8601 with their UTC offset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from typing import Any

from mailer.config import Settings
from mailer.db import Database

QUEUE_STATUSES = ("queued", "sending", "sent", "failed", "suppressed", "cancelled")


@dataclass(frozen=True)
class StrandedRows:
    """Queued rows of one account or one pool that no worker will take, and why.

    ``reason`` is ``account_paused``, ``account_suspended`` or ``account_disabled`` (rows
    pinned to ``account_id``; ``pool`` is None) or ``pool_has_no_active_account`` (rows of
    ``pool`` with no ``account_id``; the account fields are None) or ``campaign_paused`` /
    ``campaign_cancelled`` (rows of ``campaign``, paused or cancelled through the API)."""

    reason: str
    rows: int
    oldest_created_at: datetime
    account_id: int | None
    account_email: str | None
    pool: str | None
    detail: str
    campaign: str | None = None


async def collect_status(
    db: Database, *, host_dead_seconds: float = Settings.host_dead_seconds
) -> dict[str, Any]:
    """The report as plain data (what ``--json`` prints); a host whose heartbeat is older
    than ``host_dead_seconds`` is shown dead."""
    counts = {status: 0 for status in QUEUE_STATUSES}
    for row in await db.fetch_all("queue_counts"):
        counts[row["status"]] = row["count"]
    accounts = [_account_report(row) for row in await db.fetch_all("account_usage")]
    placed = {r["account_id"]: r["host_id"] for r in await db.fetch_all("status_placements")}
    for account in accounts:
        account["host"] = placed.get(account["id"])
    hosts = await db.fetch_all("status_hosts", {"dead_seconds": host_dead_seconds})
    stranded = await stranded_rows(db)
    counts["stranded"] = sum(group.rows for group in stranded)
    return {
        "queue": counts,
        "accounts": accounts,
        "hosts": [dict(h) for h in hosts],
        "stranded": [asdict(g) for g in stranded],
    }


async def stranded_rows(db: Database) -> list[StrandedRows]:
    """Every group of stranded rows, largest first."""
    return [_stranded(row) for row in await db.fetch_all("stranded_rows")]


def _stranded(row: dict[str, Any]) -> StrandedRows:
    if row["campaign"] is not None:
        detail = f"campaign {row['campaign']!r} is {row['reason'].removeprefix('campaign_')}"
    elif row["account_id"] is None:
        detail = f"pool {row['pool']!r} has no active account"
    else:
        detail = (
            f"pinned to account {row['account_id']} <{row['account_email']}>, "
            f"which is {row['account_status']}"
        )
        if row["account_last_error"]:
            detail += f" ({row['account_last_error']})"
    return StrandedRows(
        reason=row["reason"],
        rows=row["row_count"],
        oldest_created_at=row["oldest_created_at"],
        account_id=row["account_id"],
        account_email=row["account_email"],
        pool=row["pool"],
        detail=detail,
        campaign=row["campaign"],
    )


def to_json(report: dict[str, Any]) -> str:
    """``report`` as indented JSON, timestamps in ISO 8601 (what every ``--json`` prints)."""
    return json.dumps(report, indent=2, default=_json_value)


def _json_value(value: object) -> str:
    if isinstance(value, date | time):  # datetime too: ISO 8601 with its UTC offset
        return value.isoformat()
    return str(value)


def _account_report(row: dict[str, Any]) -> dict[str, Any]:
    report = {
        k: row[k]
        for k in (
            "id",
            "email",
            "status",
            "pool",
            "daily_limit",
            "hourly_limit",
            "min_delay_ms",
            "sent_last_hour",
            "sent_last_day",
            "live_workers",
            "last_error",
            "backoff_until",
            "rate_per_minute",
            "destination_rates",
        )
    }
    report["frees_at"] = _frees_at(row)
    return report


def _frees_at(row: dict[str, Any]) -> datetime | None:
    """When a limited account may send again; None when it is not at a limit."""
    times = []
    if row["sent_last_day"] >= row["daily_limit"]:
        times.append(row["day_window_frees_at"])
    hourly = row["hourly_limit"]
    if hourly is not None and row["sent_last_hour"] >= hourly:
        times.append(row["hour_window_frees_at"])
    times = [t for t in times if t is not None]
    return max(times) if times else None


def _join(note: str, more: str) -> str:
    return f"{note}; {more}" if note and more else note or more


def _rates_note(account: dict[str, Any]) -> str:
    """The adaptive rates a throttle put in force (mailer.shaping), if any."""
    parts = []
    if account.get("rate_per_minute") is not None:
        parts.append(f"rate {account['rate_per_minute']:.1f}/min")
    for group, rate in sorted((account.get("destination_rates") or {}).items()):
        parts.append(f"{group} {float(rate):.1f}/min")
    return ("shaped: " + ", ".join(parts)) if parts else ""


def format_status(report: dict[str, Any]) -> str:
    """The report as text tables."""
    queue = {k: v for k, v in report["queue"].items() if k != "stranded"}
    lines = [
        "queue:  " + "  ".join(f"{k} {v}" for k, v in queue.items()),
        "",
        f"{'id':>4}  {'email':<30} {'status':<10} {'pool':<9} {'last hour':>12} "
        f"{'last 24 h':>12} {'workers':>7} {'host':<16} note",
    ]
    for a in report["accounts"]:
        hourly = a["hourly_limit"] if a["hourly_limit"] is not None else "-"
        note = ""
        if a["frees_at"] is not None:
            note = f"at limit, frees at {a['frees_at']:%Y-%m-%d %H:%M:%S %Z}"
        note = _join(note, _rates_note(a))
        if a["last_error"]:
            note = _join(note, a["last_error"])
        hour = f"{a['sent_last_hour']}/{hourly}"
        day = f"{a['sent_last_day']}/{a['daily_limit']}"
        lines.append(
            f"{a['id']:>4}  {a['email']:<30} {a['status']:<10} {a['pool']:<9} "
            f"{hour:>12} {day:>12} {a['live_workers']:>7} {a.get('host') or '-':<16} {note}"
        )
    lines.extend(_format_hosts(report.get("hosts", [])))
    lines.extend(_format_stranded(report["stranded"]))
    return "\n".join(lines)


def _format_hosts(hosts: list[dict[str, Any]]) -> list[str]:
    """The orchestrators sharing the database (none: no ``mailer run`` has started yet)."""
    if not hosts:
        return []
    lines = ["", f"hosts:  {'host':<16} {'hostname':<20} {'pid':>7} {'accounts':>8} {'cap':>5}"]
    for h in hosts:
        cap = h["max_accounts"] if h["max_accounts"] is not None else "-"
        state = "" if h["alive"] else f"  dead, last heartbeat {h['heartbeat_at']:%H:%M:%S %Z}"
        lines.append(
            f"        {h['host_id']:<16} {h['hostname']:<20} {h['pid']:>7} "
            f"{h['accounts']:>8} {cap:>5}{state}"
        )
    return lines


def _format_stranded(groups: list[dict[str, Any]]) -> list[str]:
    if not groups:
        return []
    total = sum(g["rows"] for g in groups)
    lines = ["", f"stranded: {total} queued rows no worker will take"]
    for g in groups:
        oldest = f"{g['oldest_created_at']:%Y-%m-%d %H:%M:%S %Z}"
        lines.append(f"{g['rows']:>8}  {g['detail']}; oldest queued {oldest}")
    return lines
