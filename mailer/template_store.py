"""Templates through the API: create, read, update and delete, referred to by id or name.

A template that queued (or sending) rows still use cannot be deleted
(:class:`TemplateInUse`); one that only finished rows refer to cannot either, since those
rows keep their reference (:class:`TemplateInUse` with ``queued=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from mailer.sync_db import run, run_one


@dataclass(frozen=True)
class Template:
    id: int
    name: str
    subject: str
    html_body: str | None
    text_body: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Template:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})


class TemplateInUse(Exception):
    def __init__(self, queued: bool) -> None:
        super().__init__("queued rows use this template" if queued else "rows refer to it")
        self.queued = queued


class TemplateStore:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def list(self, cursor: int | None, limit: int) -> list[Template]:
        rows = run(self.conn, "api_list_templates", {"cursor": cursor, "limit": limit})
        return [Template.from_row(r) for r in rows]

    def get(self, ref: str) -> Template | None:
        row = run_one(self.conn, "api_get_template", {"ref": ref})
        return Template.from_row(row) if row else None

    def create(self, fields: dict[str, Any]) -> Template | None:
        """The new template, or None when the name is taken."""
        row = run_one(self.conn, "api_insert_template", fields)
        return Template.from_row(row) if row else None

    def update(self, ref: str, fields: dict[str, Any]) -> Template | None:
        params = {
            "ref": ref,
            "subject": fields.get("subject"),
            "set_html": "html_body" in fields,
            "html_body": fields.get("html_body"),
            "set_text": "text_body" in fields,
            "text_body": fields.get("text_body"),
        }
        try:
            row = run_one(self.conn, "api_update_template", params)
        except psycopg.errors.CheckViolation:
            raise ValueError("a template needs html_body or text_body") from None
        return Template.from_row(row) if row else None

    def delete(self, ref: str) -> bool:
        """True once deleted, False when there is none; TemplateInUse when rows use it."""
        row = run_one(self.conn, "api_delete_template", {"ref": ref})
        assert row is not None
        if not row["found"]:
            return False
        if row["in_use"]:
            raise TemplateInUse(queued=True)
        if not row["deleted"]:
            raise TemplateInUse(queued=False)
        return True
