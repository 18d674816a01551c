"""What a chaos run leaves behind, as plain data for the checker.

Deliveries come from the SMTP servers' record files; rows, attempts and accounts from the
database after the run settled; admin changes (limits, pauses, suppressions) from the
harness, timed when their ``UPDATE``/``INSERT`` committed. Times are Unix seconds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """A message whose final "." an SMTP server fully received."""

    server: str  # the account's email: each account has its own server
    message_id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_at: float
    data_end_at: float
    acked: bool
    connection: str = ""  # the client's port: which SMTP connection carried it
    reply_seconds: float | None = None  # from the end of the data to the 250


@dataclass(frozen=True)
class Row:
    """An ``email_queue`` row at the end of the run."""

    id: int
    status: str
    to_address: str
    account_id: int | None
    pool: str
    message_id: str | None
    due_at: float


@dataclass(frozen=True)
class Attempt:
    """A ``send_logs`` row."""

    queue_id: int
    account_id: int | None
    outcome: str
    counted: bool
    response: str
    created_at: float


@dataclass(frozen=True)
class Account:
    """A sender account: its address, pool, and status and limits at the end."""

    id: int
    email: str
    pool: str
    status: str
    daily_limit: int
    hourly_limit: int | None
    min_delay_ms: int


@dataclass(frozen=True)
class Change:
    """An admin change of one account committed at ``at``: new limit values and/or a
    status. ``None`` fields did not change (``hourly_limit`` is never set to NULL)."""

    account_id: int
    at: float
    daily_limit: int | None = None
    hourly_limit: int | None = None
    min_delay_ms: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class Suppression:
    """An address suppressed by the harness, committed at ``at``."""

    email: str
    at: float


@dataclass
class History:
    """Everything the checker reads. ``initial`` holds each account as first inserted."""

    deliveries: list[Delivery]
    rows: list[Row]
    attempts: list[Attempt]
    initial: list[Account]
    final: list[Account]
    changes: list[Change] = field(default_factory=list)
    suppressions: list[Suppression] = field(default_factory=list)
    ended_at: float = 0.0


def load_deliveries(paths: list[Path]) -> list[Delivery]:
    """Deliveries of the servers' JSON-lines record files ("data" lines, acknowledged
    when an "ack" line with the same server and number follows)."""
    data: dict[tuple[str, int], dict[str, Any]] = {}
    acked: dict[tuple[str, int], float] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            key = (record["server"], record["n"])
            if record["event"] == "data":
                data[key] = record
            else:
                acked[key] = float(record["at"])
    return sorted(
        (_delivery(record, acked.get(key)) for key, record in data.items()),
        key=lambda d: d.mail_at,
    )


def _delivery(record: dict[str, Any], acked_at: float | None) -> Delivery:
    return Delivery(
        server=record["server"],
        message_id=record["message_id"],
        mail_from=record["mail_from"],
        rcpt_tos=tuple(record["rcpt_tos"]),
        mail_at=float(record["mail_at"]),
        data_end_at=float(record["data_end_at"]),
        acked=acked_at is not None,
        connection=str(record.get("connection", "")),
        reply_seconds=None if acked_at is None else acked_at - float(record["data_end_at"]),
    )


def save_history(history: History, path: Path) -> None:
    """Write ``history`` as JSON (kept beside a run's records, for a later look)."""
    path.write_text(json.dumps(asdict(history)), encoding="utf-8")


def load_history(path: Path) -> History:
    """Read a history written by :func:`save_history`."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return History(
        deliveries=[Delivery(**{**d, "rcpt_tos": tuple(d["rcpt_tos"])}) for d in raw["deliveries"]],
        rows=[Row(**r) for r in raw["rows"]],
        attempts=[Attempt(**a) for a in raw["attempts"]],
        initial=[Account(**a) for a in raw["initial"]],
        final=[Account(**a) for a in raw["final"]],
        changes=[Change(**c) for c in raw["changes"]],
        suppressions=[Suppression(**s) for s in raw["suppressions"]],
        ended_at=raw["ended_at"],
    )
