"""Emails submitted through the API: queued in one statement, read back, cancelled and
retried, always within what the submitting key may see (:class:`~mailer.api_keys.ApiKey`).

Rows carry the submitting key's id (``email_queue.api_key_id``); a pool-restricted key
sends only through its pools and reads, cancels or retries only its own rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mailer.api_keys import ApiKey
from mailer.email_requests import FieldError
from mailer.render import Renderer
from mailer.sync_db import run, run_one
from mailer.tracking_hooks import TEMPLATE_VARIABLES

#: The most rows one listing page returns.
MAX_PAGE = 200
#: A submission's field of each rendered part.
_FIELDS = {"subject": "subject", "html_body": "html", "text_body": "text"}


@dataclass(frozen=True)
class QueuedEmailRef:
    """What a submission returns for each queued row."""

    id: int
    status: str
    message_id: str | None


@dataclass(frozen=True)
class EmailPage:
    """One page of a listing and the cursor of the next (None at the end)."""

    items: list[dict[str, Any]]
    next_cursor: int | None


class EmailSubmissions:
    """Queue, read, cancel and retry API rows on one synchronous connection. ``key`` None
    is the operator (``mailer recurring add``): :meth:`resolve` then restricts nothing;
    the other methods need a key."""

    def __init__(self, conn: psycopg.Connection[Any], key: ApiKey | None) -> None:
        self.conn = conn
        self.key = key
        self._template_parts: dict[int, tuple[str, str | None, str | None]] = {}
        # templates are tried as a worker renders them; its compiled templates are this
        # submission's only (a process-wide cache would keep every body ever submitted)
        self._renderer = Renderer(max_message_bytes=0)

    def resolve(self, rows: list[dict[str, Any]], bases: list[str]) -> list[list[FieldError]]:
        """Resolve template references and check pools and accounts against the key, in
        place; one error list per row (two queries whatever the number of rows)."""
        refs = sorted({r["template"] for r in rows if "template" in r})
        found = run(self.conn, "api_template_ids", {"refs": refs}) if refs else []
        by_ref = {str(t["id"]): t["id"] for t in found} | {t["name"]: t["id"] for t in found}
        for t in found:
            self._template_parts[t["id"]] = (t["subject"], t["html_body"], t["text_body"])
        ids = sorted({r["account_id"] for r in rows if "account_id" in r})
        accounts = run(self.conn, "api_accounts_for_send", {"ids": ids}) if ids else []
        pools = {a["id"]: a["pool"] for a in accounts}
        return [self._resolve_one(r, b, by_ref, pools) for r, b in zip(rows, bases, strict=True)]

    def _resolve_one(
        self, row: dict[str, Any], base: str, templates: dict[str, int], pools: dict[int, str]
    ) -> list[FieldError]:
        errors = []
        ref = row.pop("template", None)
        if ref is not None:
            if ref in templates:
                row["template_id"] = templates[ref]
            else:
                errors.append(FieldError(f"{base}/template", f"no template {ref!r}"))
        account = row.get("account_id")
        if account is not None and account not in pools:
            errors.append(FieldError(f"{base}/account", f"no sender account {account}"))
        if self.key is not None and self.key.restricted:
            if account in pools:
                row["pool"] = pools[account]
            row.setdefault("pool", self.key.pools[0])
            if row["pool"] not in self.key.pools:
                where = "account" if account is not None else "pool"
                errors.append(
                    FieldError(
                        f"{base}/{where}",
                        f"this key may only send through pools {', '.join(self.key.pools)}",
                    )
                )
        return errors

    def template_errors(
        self, row: dict[str, Any], base: str, *, compile_only: bool = False
    ) -> list[FieldError]:
        """What the worker's rendering of resolved ``row`` would fail it with: inline
        parts (pointers ``subject``, ``html``, ``text``) or a stored template with the
        row's variables (pointer ``variables``). ``compile_only``: the variables are not
        all known yet (a campaign's, before its recipients)."""
        if row.get("variables") is None and row.get("template_id") is None:
            return []  # not a template: rendered as written
        stored = self._template_parts.get(row.get("template_id") or 0)
        parts = stored or (row.get("subject"), row.get("html_body"), row.get("text_body"))
        variables = None if compile_only else row.get("variables") or {}
        problems = self._renderer.template_errors(parts, variables, TEMPLATE_VARIABLES)
        return [
            FieldError(f"{base}/{'variables' if stored else _FIELDS[part]}", detail)
            for part, detail in problems.items()
        ]

    def queue(self, rows: list[dict[str, Any]]) -> list[QueuedEmailRef]:
        """INSERT ``rows`` (resolved) in one statement; refs in the same order."""
        if not rows:
            return []
        queued = run(
            self.conn, "insert_api_emails", {"rows": Jsonb(rows), "api_key_id": self.key.id}
        )
        queued.sort(key=lambda r: r["id"])
        return [QueuedEmailRef(r["id"], r["status"], r["message_id"]) for r in queued]

    def get(self, email_id: int) -> dict[str, Any] | None:
        """The row with its attempts and events, or None (absent or not this key's)."""
        row = run_one(
            self.conn, "api_get_email", {"id": email_id, "api_key_id": self.key.owner_filter}
        )
        if row is None:
            return None
        row.pop("api_key_id")
        row["attempt_count"] = row.pop("attempts")
        row["attempts"] = run(self.conn, "api_email_attempts", {"id": email_id})
        row["events"] = run(self.conn, "api_email_events", {"id": email_id})
        return row

    def list(
        self,
        *,
        status: str | None = None,
        campaign: str | None = None,
        to: str | None = None,
        since: datetime | None = None,
        cursor: int | None = None,
        limit: int = 50,
    ) -> EmailPage:
        limit = max(1, min(limit, MAX_PAGE))
        rows = run(
            self.conn,
            "api_list_emails",
            {
                "status": status,
                "campaign": campaign,
                "to": to,
                "since": since,
                "cursor": cursor,
                "limit": limit + 1,
                "api_key_id": self.key.owner_filter,
            },
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return EmailPage(rows, rows[-1]["id"] if more else None)

    def cancel(self, email_id: int) -> QueuedEmailRef | None:
        """Cancel a queued row; None when it is absent, not this key's, or not queued."""
        return self._transition("api_cancel_email", email_id)

    def retry(self, email_id: int) -> QueuedEmailRef | None:
        """Queue a failed row again with its attempts reset and the reason logged."""
        return self._transition("api_retry_email", email_id)

    def _transition(self, name: str, email_id: int) -> QueuedEmailRef | None:
        row = run_one(self.conn, name, {"id": email_id, "api_key_id": self.key.owner_filter})
        return QueuedEmailRef(row["id"], row["status"], row["message_id"]) if row else None
