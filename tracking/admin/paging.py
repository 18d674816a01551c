"""Query-string helpers the console's lists share: keyset cursors and bounded integers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import abort, request

#: Rows per page of every console list.
PAGE_SIZE = 50
MAX_ID = 2**63 - 1


def int_arg(name: str, source: dict[str, str] | None = None) -> int | None:
    """``name`` from the query (or ``source``) as a positive bigint; 400 when malformed."""
    raw = (source if source is not None else request.args).get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > MAX_ID:
        abort(400, f"{name} must be a positive whole number")
    return int(raw)


def cursor_arg() -> int | None:
    return int_arg("cursor")


def text_arg(name: str, source: dict[str, str] | None = None, limit: int = 998) -> str | None:
    """A trimmed text filter (None when empty); 400 when too long or holding NUL."""
    raw = (source if source is not None else request.args).get(name, "").strip()
    if "\0" in raw or len(raw) > limit:
        abort(400, f"{name} is too long or holds a NUL character")
    return raw or None


def date_arg(name: str, source: dict[str, str] | None = None) -> datetime | None:
    """An ISO 8601 date or date-time (``<input type=date>``); 400 when malformed."""
    raw = text_arg(name, source, 40)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        abort(400, f"{name} must be a date like 2026-12-01")


def page_of(rows: list[Any], key: Callable[[Any], int]) -> tuple[list[Any], int | None]:
    """A page from ``PAGE_SIZE + 1`` fetched rows: the first ``PAGE_SIZE`` and the cursor
    of the next page (None on the last)."""
    more = len(rows) > PAGE_SIZE
    shown = rows[:PAGE_SIZE]
    return shown, key(shown[-1]) if more else None
