"""What a sender account's settings must satisfy, checked before any write (so a bad value
is named plainly and burns no sequence id). The table's CHECK constraints say the same
thing as the last word; this is the first, in words an operator reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mailer.addresses import validated_address
from mailer.errors import InvalidMessageError, MailerError

#: Same rule as the sender_accounts ehlo_hostname CHECK (migration 0007).
EHLO_HOSTNAME = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)")
#: Settings that must be zero or more.
NON_NEGATIVE = ("daily_limit", "hourly_limit", "min_delay_ms")
#: Settings that are TCP ports.
PORTS = ("smtp_port", "imap_port")


class InvalidAccount(MailerError):
    """An account setting is not acceptable; the message names it and says why."""


def account_problems(fields: Mapping[str, Any]) -> list[str]:
    """Every problem of the given settings (None values are not given); empty when fine."""
    problems = []
    email = fields.get("email")
    if email is not None:
        try:
            validated_address(email, what="--email")
        except InvalidMessageError as exc:
            problems.append(str(exc))
    for name in NON_NEGATIVE:
        value = fields.get(name)
        if value is not None and value < 0:
            problems.append(f"{_option(name)} must be 0 or more, not {value}")
    for name in PORTS:
        value = fields.get(name)
        if value is not None and not 1 <= value <= 65535:
            problems.append(f"{_option(name)} must be a port from 1 to 65535, not {value}")
    ehlo = fields.get("ehlo_hostname")
    if ehlo is not None and not EHLO_HOSTNAME.fullmatch(ehlo):
        problems.append(f"--ehlo-hostname {ehlo!r} is not a host name or [address literal]")
    for name in ("pool", "smtp_host"):
        value = fields.get(name)
        if value is not None and not value.strip():
            problems.append(f"{_option(name)} must not be empty")
    return problems


def check_account(fields: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidAccount` naming every problem of ``fields``."""
    problems = account_problems(fields)
    if problems:
        raise InvalidAccount("; ".join(problems))


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")
