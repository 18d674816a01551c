"""Sender accounts as the API shows and changes them: read (never a secret), pause,
resume and limits. Changes take effect like an admin's UPDATE: workers re-read accounts."""

from __future__ import annotations

from typing import Any

import psycopg

from mailer.sync_db import run, run_one


class AccountAdmin:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def list(self, account_id: int | None = None) -> list[dict[str, Any]]:
        """Accounts without any credential column (the query names its columns)."""
        return run(self.conn, "api_list_accounts", {"id": account_id})

    def set_paused(self, account_id: int, paused: bool) -> bool:
        """Pause an active account, or resume a paused one; False if it was not so."""
        params = {
            "id": account_id,
            "status": "paused" if paused else "active",
            "from_status": ["active"] if paused else ["paused"],
        }
        return run_one(self.conn, "api_set_account_status", params) is not None

    def set_limits(self, account_id: int, limits: dict[str, Any]) -> bool:
        params = {
            "id": account_id,
            "daily_limit": limits.get("daily_limit"),
            "set_hourly": "hourly_limit" in limits,
            "hourly_limit": limits.get("hourly_limit"),
            "min_delay_ms": limits.get("min_delay_ms"),
        }
        return run_one(self.conn, "api_set_account_limits", params) is not None
