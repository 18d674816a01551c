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


def display_name_from_form(form: Mapping[str, str]) -> str | None:
    """The display name (empty: None), without CR, LF or NUL."""
    display = (form.get("display_name") or "").strip()
    if any(c in display for c in "\r\n\0") or len(display) > 200:
        raise FormError("the display name may not hold CR, LF or NUL (200 characters at most)")
    return display or None


def pool_from_form(form: Mapping[str, str], default: str | None = "default") -> str | None:
    """The pool name (empty: ``default``)."""
    pool = (form.get("pool") or "").strip() or default
    if pool is not None and len(pool) > 100:
        raise FormError("pool must be a name of at most 100 characters")
    return pool


SMTP_SECURITY = ("starttls", "tls", "none")


def smtp_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """``smtp_host``, ``smtp_port``, ``smtp_security``, ``smtp_username`` (empty: keep) and
    ``password`` (empty: keep; write-only) from a form."""
    host = (form.get("smtp_host") or "").strip()
    if not host or len(host) > 253 or any(c.isspace() or c in "/\\@" for c in host):
        raise FormError("smtp_host must be a host name or address")
    port = _count(form, "smtp_port", required=True)
    if port is None or not 1 <= port <= 65535:
        raise FormError("smtp_port must be from 1 to 65535")
    security = form.get("smtp_security", "")
    if security not in SMTP_SECURITY:
        raise FormError(f"smtp_security must be one of {', '.join(SMTP_SECURITY)}")
    username = (form.get("smtp_username") or "").strip()
    password = form.get("smtp_password") or ""
    if any(c in username + password for c in "\r\n\0"):
        raise FormError("the username and password may not hold CR, LF or NUL")
    return {
        "smtp_host": host,
        "smtp_port": port,
        "smtp_security": security,
        "smtp_username": username or None,
        "password": password or None,
    }
