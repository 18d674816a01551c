"""Recurring sends: schedules that queue a message on a cron expression in a time zone.

:class:`RecurringSends` creates, reads, pauses, resumes and removes schedules on one
synchronous connection: what the HTTP API's ``/recurring`` routes and ``mailer recurring``
call. A schedule's email is checked exactly as ``POST /emails`` checks one
(:func:`mailer.email_requests.check_email`, template and account resolved by
:class:`mailer.email_submissions.EmailSubmissions`) and stored as the ``email_queue``
columns each occurrence inserts. A recurring campaign (kind ``campaign``) is checked as
``POST /campaigns`` checks one (:func:`mailer.campaign_requests.check_campaign`; every
inline recipient must be valid) and stored as ``{name, message, track_opens,
track_clicks, recipients}``: each occurrence creates the campaign
``<name>-<occurrence local time>`` (:func:`mailer.recurrence.occurrence_label`) and
queues every recipient once. Occurrences are queued by
:mod:`mailer.recurring_scheduler`; when they fall is :mod:`mailer.recurrence`.

A schedule made with a pool-restricted API key belongs to that key: only it sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mailer.api_keys import ApiKey
from mailer.campaign_requests import check_campaign
from mailer.email_requests import MAX_LABEL, FieldError, check_email
from mailer.email_submissions import EmailSubmissions
from mailer.errors import MailerError
from mailer.recurrence import (
    LABEL_SUFFIX,
    Recurrence,
    RecurrenceError,
    check_cron,
    check_timezone,
    next_occurrence,
)
from mailer.render import clean_header
from mailer.sync_db import Row, run, run_one

#: What a schedule may queue: one email, or a campaign (its recipients) per occurrence.
KINDS = ("email", "campaign")
FIELDS = frozenset({"name", "kind", "cron", "timezone", "email", "campaign", "enabled"})
MAX_NAME = 200
MAX_PAGE = 200
#: Occurrences shown with one schedule.
RECENT_RUNS = 20
_DIGITS = re.compile(r"[0-9]+")


class RecurringInvalid(MailerError):
    """The schedule's definition is invalid: one :class:`FieldError` per problem."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(
            "; ".join(f"{e.pointer.lstrip('/') or 'body'}: {e.detail}" for e in errors)
        )
        self.errors = errors


class RecurringNameTaken(MailerError):
    """Another schedule has this name."""


@dataclass(frozen=True)
class RecurringSend:
    """A schedule as stored."""

    id: int
    name: str
    kind: str
    cron: str
    timezone: str
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    runs: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_row(cls, row: Row, runs: list[Row] | None = None) -> RecurringSend:
        return cls(
            **{k: row[k] for k in _COLUMNS},
            runs=tuple(runs or ()),
        )


_COLUMNS = (
    "id",
    "name",
    "kind",
    "cron",
    "timezone",
    "enabled",
    "next_run_at",
    "last_run_at",
    "last_error",
    "payload",
    "created_at",
    "updated_at",
)


def check_definition(
    body: object, *, reject_special_use: bool = False
) -> tuple[dict[str, Any], list[FieldError]]:
    """The fields of a new schedule from a JSON object (``email`` as ``email_queue``
    columns, template and account still as given), and every problem found."""
    if not isinstance(body, dict):
        return {}, [FieldError("/", "must be a JSON object with name, cron, timezone and email")]
    errors = [FieldError(f"/{k}", "is not a known field") for k in sorted(set(body) - FIELDS)]
    found: dict[str, Any] = {"name": _name(body.get("name"), errors)}
    found["kind"] = body.get("kind", "email")
    if found["kind"] not in KINDS:
        errors.append(FieldError("/kind", f"must be one of: {', '.join(KINDS)}"))
    for field, check in (("cron", check_cron), ("timezone", check_timezone)):
        try:
            found[field] = check(body.get(field))
        except RecurrenceError as exc:
            errors.append(FieldError(f"/{field}", str(exc)))
    found["enabled"] = body.get("enabled", True)
    if not isinstance(found["enabled"], bool):
        errors.append(FieldError("/enabled", "must be true or false"))
    wanted = "campaign" if found["kind"] == "campaign" else "email"
    for other in {"email", "campaign"} - {wanted}:
        if other in body:
            errors.append(FieldError(f"/{other}", f"is not allowed with kind {found['kind']!r}"))
    if wanted == "email":
        found["email"] = _email(body.get("email"), errors, reject_special_use)
    return found, errors


def _name(name: object, errors: list[FieldError]) -> str | None:
    problem = None
    if not isinstance(name, str) or not name.strip():
        problem = "is required: a name for the schedule"
    elif len(name) > MAX_NAME or _DIGITS.fullmatch(name.strip()):
        problem = f"must be at most {MAX_NAME} characters and not all digits"
    else:
        try:
            clean_header(name)
        except MailerError as exc:
            problem = str(exc)
    if problem is not None:
        errors.append(FieldError("/name", problem))
        return None
    assert isinstance(name, str)
    return name.strip()


def _no_schedule(body: object, base: str, errors: list[FieldError]) -> object:
    """``body`` without ``scheduled_at``, which is an error here: the cron sets the times."""
    if isinstance(body, dict) and "scheduled_at" in body:
        errors.append(
            FieldError(f"{base}/scheduled_at", "is not allowed: the cron expression sets the times")
        )
        return {k: v for k, v in body.items() if k != "scheduled_at"}
    return body


def _email(
    email: object, errors: list[FieldError], reject_special_use: bool
) -> dict[str, Any] | None:
    email = _no_schedule(email, "/email", errors)
    row, found = check_email(email, base="/email", reject_special_use=reject_special_use)
    errors.extend(found)
    return row


class RecurringSends:
    """Schedules on one synchronous connection, as seen by ``key`` (None: the operator,
    through the CLI, who sees and may change every schedule)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        key: ApiKey | None = None,
        *,
        reject_special_use: bool = False,
    ) -> None:
        self.conn = conn
        self.key = key
        self.reject_special_use = reject_special_use

    def _now(self) -> datetime:
        """The database's clock: the one the scheduler fires by."""
        row = run_one(self.conn, "db_now")
        assert row is not None
        return row["now"]

    @property
    def _owner(self) -> int | None:
        return self.key.owner_filter if self.key is not None else None

    def create(self, body: object, now: datetime | None = None) -> RecurringSend:
        """Check and store a schedule; its first occurrence is the first after ``now``.
        RecurringInvalid lists every problem; RecurringNameTaken when the name is used."""
        found, errors = check_definition(body, reject_special_use=self.reject_special_use)
        row = found.get("email")
        if row is not None:
            submissions = EmailSubmissions(self.conn, self.key)
            resolved = submissions.resolve([row], ["/email"])[0]
            errors.extend(resolved or submissions.template_errors(row, "/email"))
        elif found["kind"] == "campaign":
            assert isinstance(body, dict)
            row = self._campaign(body.get("campaign"), errors)
        first = None
        if not errors:
            first = _first_occurrence(found["cron"], found["timezone"], now or self._now(), errors)
        if errors:
            raise RecurringInvalid(errors)
        stored = run_one(
            self.conn,
            "insert_recurring_send",
            {
                **{k: found[k] for k in ("name", "kind", "cron", "timezone", "enabled")},
                "payload": Jsonb(row),
                "next_run_at": first,
                "api_key_id": self.key.id if self.key is not None else None,
            },
        )
        if stored is None:
            raise RecurringNameTaken(f"a recurring send named {found['name']!r} exists")
        return RecurringSend.from_row(stored)

    def _campaign(self, body: object, errors: list[FieldError]) -> dict[str, Any] | None:
        """The payload of a recurring campaign: its base name, resolved message, tracking
        switches and every recipient (all must be valid: there is no one to tell later)."""
        body = _no_schedule(body, "/campaign", errors)
        request, found = check_campaign(
            body,
            EmailSubmissions(self.conn, self.key),
            base="/campaign",
            max_name=MAX_LABEL - LABEL_SUFFIX,
            reject_special_use=self.reject_special_use,
        )
        errors.extend(found)
        if request is None:
            return None
        errors.extend(e for problems in request.recipient_errors for e in problems)
        recipients = [r for r in request.recipients if r is not None]
        if not recipients and not errors:
            errors.append(
                FieldError("/campaign/recipients", "needs at least one recipient to queue")
            )
        shared = {"name": request.name, "message": request.message, **request.tracking}
        return shared | {"recipients": recipients}

    def get(self, ref: str | int) -> RecurringSend | None:
        """The schedule with this id or name and its latest occurrences, or None."""
        row = run_one(self.conn, "get_recurring_send", {"ref": str(ref), "api_key_id": self._owner})
        if row is None:
            return None
        runs = run(self.conn, "recurring_runs_of", {"id": row["id"], "limit": RECENT_RUNS})
        return RecurringSend.from_row(row, runs)

    def list(self, cursor: int | None = None, limit: int = 50) -> list[RecurringSend]:
        """Schedules by id after ``cursor``."""
        params = {
            "cursor": cursor,
            "limit": max(1, min(limit, MAX_PAGE)),
            "api_key_id": self._owner,
        }
        return [RecurringSend.from_row(r) for r in run(self.conn, "list_recurring_sends", params)]

    def remove(self, ref: str | int) -> bool:
        """Delete a schedule (rows it already queued stay queued); False if none."""
        params = {"ref": str(ref), "api_key_id": self._owner}
        return bool(run(self.conn, "delete_recurring_send", params))

    def pause(self, ref: str | int) -> RecurringSend | None:
        """Stop queueing occurrences (a paused schedule is left as it is); None if none."""
        found = self.get(ref)
        if found is None or not found.enabled:
            return found
        row = run_one(self.conn, "pause_recurring_send", {"id": found.id})
        return RecurringSend.from_row(row) if row else self.get(found.id)

    def resume(self, ref: str | int, now: datetime | None = None) -> RecurringSend | None:
        """Queue occurrences again, from the first one after ``now`` (those that fell
        while paused are not queued); None if there is no such schedule."""
        found = self.get(ref)
        if found is None or found.enabled:
            return found
        recurrence = Recurrence(found.cron, found.timezone)
        params = {
            "id": found.id,
            "cron": found.cron,
            "timezone": found.timezone,
            "next_run_at": next_occurrence(recurrence, now or self._now()),
        }
        row = run_one(self.conn, "resume_recurring_send", params)
        return RecurringSend.from_row(row) if row else self.get(found.id)


def _first_occurrence(
    cron: str, timezone: str, now: datetime, errors: list[FieldError]
) -> datetime | None:
    try:
        return next_occurrence(Recurrence(cron, timezone), now)
    except RecurrenceError as exc:
        errors.append(FieldError("/cron", str(exc)))
        return None
