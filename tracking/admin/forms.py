"""Form parsing the console's views share (pure: a form mapping in, values or an error
message out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Largest limit a form may set (PostgreSQL integer).
MAX_INT = 2**31 - 1


class FormError(ValueError):
    """A form value is wrong; the message says which and why."""


def limits_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """``daily_limit``, ``hourly_limit`` (empty: none) and ``min_delay_ms`` from a form."""
    return {
        "daily_limit": _count(form, "daily_limit", required=True),
        "hourly_limit": _count(form, "hourly_limit", required=False),
        "min_delay_ms": _count(form, "min_delay_ms", required=True),
    }


def _count(form: Mapping[str, str], name: str, *, required: bool) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        if required:
            raise FormError(f"{name} is required")
        return None
    if not raw.isdigit() or int(raw) > MAX_INT:
        raise FormError(f"{name} must be a whole number from 0 to {MAX_INT}")
    return int(raw)
