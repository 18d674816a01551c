"""The console's audit log (``admin_audit_log``): who changed what, when, from where, with
the values before and after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mailer.sync_db import run


@dataclass(frozen=True)
class AuditEntry:
    id: int
    admin_email: str
    action: str
    target: str
    before: Any
    after: Any
    ip: str | None
    created_at: datetime

    def change(self) -> str:
        """``before → after`` as compact JSON, for display."""
        return f"{_compact(self.before)} → {_compact(self.after)}"


def _compact(value: Any) -> str:
    return "—" if value is None else json.dumps(value, default=str, sort_keys=True)


class AdminAudit:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def record(
        self,
        actor: tuple[int, str],
        action: str,
        target: str,
        *,
        before: Any = None,
        after: Any = None,
        ip: str | None = None,
    ) -> None:
        """Record one change made by ``actor`` (user id, email)."""
        params = {
            "admin_user_id": actor[0],
            "admin_email": actor[1],
            "action": action,
            "target": target,
            "before": None if before is None else Jsonb(before, dumps=_dumps),
            "after": None if after is None else Jsonb(after, dumps=_dumps),
            "ip": ip,
        }
        run(self.conn, "admin_audit_insert", params)

    def page(self, cursor: int | None, limit: int) -> list[AuditEntry]:
        rows = run(self.conn, "admin_audit_page", {"cursor": cursor, "limit": limit})
        return [AuditEntry(**row) for row in rows]


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
