"""Settings: one frozen object built once from ``MAILER_*`` and ``DATABASE_URL``.

Every default lives in this module. Every CLI option that tunes the engine reads its
default from here, so ``mailer worker --batch-size 50`` and ``MAILER_BATCH_SIZE=50`` are
the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Engine configuration; environment variable names are ``MAILER_<FIELD>`` upper-cased,
    except ``database_url`` which is ``DATABASE_URL``."""

    #: PostgreSQL URL; empty means the embedded server under ``home``.
    database_url: str = ""
    #: Where the embedded PostgreSQL, the generated secret key and sink mail live.
    home: Path = Path(".mailer")
    #: Encrypts credentials at rest and signs tokens; generated under ``home`` if unset.
    secret_key: str = ""
    #: Where tracking and unsubscribe links point.
    base_url: str = "http://127.0.0.1:8025"
    #: Rows claimed per claim query.
    batch_size: int = 100
    #: How long a claimed row stays leased without a heartbeat before others recover it.
    lease_seconds: float = 60.0
    #: Worker heartbeat: renews leases, re-reads the account's settings (admin UPDATEs).
    heartbeat_seconds: float = 2.0
    #: Idle workers claim at least this often even without a NOTIFY.
    poll_seconds: float = 5.0
    #: First retry delay of a transient failure; doubles per attempt, with jitter.
    retry_base_seconds: float = 60.0
    #: Longest delay between two attempts of one row.
    retry_max_seconds: float = 3600.0
    #: First account-level backoff (throttling, server unreachable); doubles per repeat.
    account_backoff_base_seconds: float = 30.0
    #: Longest account-level backoff.
    account_backoff_max_seconds: float = 900.0
    #: SMTP connect/command timeout.
    smtp_timeout_seconds: float = 30.0
    #: Reconnect after this many messages on one SMTP connection.
    messages_per_connection: int = 100
    #: Results are written in one statement per this many rows (or sooner when idle).
    result_batch_size: int = 50
    #: On SIGTERM, in-flight sends get this long to finish before the rest is returned.
    shutdown_grace_seconds: float = 30.0
    #: Orchestrator: how often it re-reads sender_accounts (NOTIFY makes it sooner).
    orchestrator_poll_seconds: float = 2.0
    #: Orchestrator: this many crashes of one worker within an hour suspends the account.
    max_crashes_per_hour: int = 3
    #: Largest rendered message accepted, in bytes.
    max_message_bytes: int = 10 * 1024 * 1024
    #: ``text`` or ``json`` (one JSON object per line).
    log_format: str = "text"
    log_level: str = "INFO"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return "DATABASE_URL" if field_name == "database_url" else f"MAILER_{field_name.upper()}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``); bad values raise
    ValueError naming the variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in fields(Settings):
        raw = environ.get(env_name(field.name))
        if raw is None or raw == "":
            continue
        values[field.name] = _coerce(field.name, field.default, raw)
    settings = Settings(**values)
    if settings.log_format not in ("text", "json"):
        raise ValueError(f"{env_name('log_format')} must be 'text' or 'json'")
    return settings


def _coerce(name: str, default: Any, raw: str) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
        return raw
    except ValueError:
        raise ValueError(
            f"{env_name(name)}={raw!r} is not a valid {type(default).__name__}"
        ) from None
