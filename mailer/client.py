"""A small typed client for Mailer's HTTP API (``/api/v1``), on httpx.

Every POST carries an ``Idempotency-Key`` (a fresh UUID unless given), kept across the
client's own retries, so a retried send never queues twice. 429 and 5xx answers and
connection failures are retried with exponential backoff, honouring ``Retry-After``.
Errors raise :class:`ApiError` carrying the RFC 9457 problem document.

    with MailerClient("https://mail.example.com", "mk_...") as mailer:
        queued = mailer.send({"to": "ann@example.org", "subject": "Hi", "text": "Hello"})
        print(mailer.get_email(queued.id)["status"])
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Queued:
    """A queued email: its row id, status and Message-ID (once known)."""

    id: int
    status: str
    message_id: str | None


@dataclass(frozen=True)
class BatchResult:
    """One item of a batch: ``id`` when queued, else ``error``."""

    index: int
    id: int | None
    error: dict[str, Any] | None


class ApiError(Exception):
    """The API answered with an error: ``status`` and the problem document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem

    @property
    def type(self) -> str:
        return str(self.problem.get("type", ""))


class MailerClient:
    """Calls the API at ``base_url`` with ``api_key``; use as a context manager."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> MailerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- emails -------------------------------------------------------------------------
    def send(self, email: dict[str, Any], *, idempotency_key: str | None = None) -> Queued:
        out = self._call("POST", "/emails", json=email, idempotency_key=idempotency_key)
        return Queued(out["id"], out["status"], out.get("message_id"))

    def send_batch(
        self,
        emails: list[dict[str, Any]],
        *,
        permissive: bool = False,
        idempotency_key: str | None = None,
    ) -> list[BatchResult]:
        body = {"emails": emails, "mode": "permissive" if permissive else "strict"}
        out = self._call("POST", "/emails/batch", json=body, idempotency_key=idempotency_key)
        return [BatchResult(r["index"], r.get("id"), r.get("error")) for r in out["results"]]

    def get_email(self, email_id: int) -> dict[str, Any]:
        return self._call("GET", f"/emails/{email_id}")

    def list_emails(self, **filters: str | int) -> Iterator[dict[str, Any]]:
        """Every email matching ``filters`` (status, campaign, to, since), newest first,
        fetching page after page."""
        yield from self._pages("/emails", {k: v for k, v in filters.items() if v is not None})

    def cancel(self, email_id: int) -> Queued:
        out = self._call("POST", f"/emails/{email_id}/cancel")
        return Queued(out["id"], out["status"], out.get("message_id"))

    def retry(self, email_id: int) -> Queued:
        out = self._call("POST", f"/emails/{email_id}/retry")
        return Queued(out["id"], out["status"], out.get("message_id"))

    # -- templates ----------------------------------------------------------------------
    def create_template(
        self, name: str, subject: str, *, html: str | None = None, text: str | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "subject": subject, "html": html, "text": text}
        return self._call("POST", "/templates", json=body)

    def get_template(self, ref: str | int) -> dict[str, Any]:
        return self._call("GET", f"/templates/{ref}")

    def update_template(self, ref: str | int, **fields: str | None) -> dict[str, Any]:
        return self._call("PATCH", f"/templates/{ref}", json=fields)

    def delete_template(self, ref: str | int) -> None:
        self._call("DELETE", f"/templates/{ref}")

    def list_templates(self) -> list[dict[str, Any]]:
        return self._call("GET", "/templates")["data"]

    # -- suppressions -------------------------------------------------------------------
    def suppress(self, *emails: str, reason: str = "manual") -> int:
        body = {"suppressions": [{"email": e, "reason": reason} for e in emails]}
        return self._call("POST", "/suppressions", json=body)["added"]

    def unsuppress(self, email: str) -> None:
        self._call("DELETE", f"/suppressions/{email}")

    def list_suppressions(self, search: str | None = None) -> list[dict[str, Any]]:
        params = {"search": search} if search else {}
        return self._call("GET", "/suppressions", params=params)["data"]

    def import_suppressions(self, csv_text: str, *, reason: str = "manual") -> dict[str, Any]:
        return self._call(
            "POST",
            "/suppressions/import",
            content=csv_text.encode(),
            params={"reason": reason},
            headers={"Content-Type": "text/csv"},
        )

    def export_suppressions(self) -> Iterator[str]:
        """The CSV export, line by line as it streams in."""
        with self._http.stream("GET", "/suppressions/export") as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            yield from response.iter_lines()

    # -- campaigns ----------------------------------------------------------------------
    def create_campaign(
        self,
        name: str,
        recipients: list[str | dict[str, Any]] | None = None,
        *,
        permissive: bool = False,
        idempotency_key: str | None = None,
        **message: Any,
    ) -> dict[str, Any]:
        """Create campaign ``name`` whose recipients (up to 500 here; more with
        :meth:`upload_recipients`) get ``message`` (subject, html, text or template,
        variables, pool, account, priority, scheduled_at, tracking switches, metadata)."""
        body = message | {
            "name": name,
            "recipients": recipients or [],
            "mode": "permissive" if permissive else "strict",
        }
        return self._call("POST", "/campaigns", json=body, idempotency_key=idempotency_key)

    def upload_recipients(
        self, name: str, csv: bytes | Iterable[bytes], *, strict: bool = False
    ) -> dict[str, Any]:
        """Add recipients from CSV (header row: email, name, variables...). ``csv`` may
        be an iterable of byte chunks (a file opened in binary mode): it is streamed, and
        then not retried (a stream cannot be sent twice; uploading the same file again
        is safe: addresses already in the campaign are skipped)."""
        path = f"/campaigns/{name}/recipients"
        params = {"strict": "true" if strict else "false"}
        headers = {"Content-Type": "text/csv"}
        if isinstance(csv, bytes):
            return self._call("POST", path, content=csv, params=params, headers=headers)
        response = self._http.post(path, content=csv, params=params, headers=headers)
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    def get_campaign(self, name: str) -> dict[str, Any]:
        """The campaign's summary: counts, progress, send rate, engagement, top links."""
        return self._call("GET", f"/campaigns/{name}")

    def list_campaigns(self) -> Iterator[dict[str, Any]]:
        """Every campaign, newest first, fetching page after page."""
        params: dict[str, Any] = {}
        while True:
            page = self._call("GET", "/campaigns", params=params)
            yield from page["data"]
            if page["next_cursor"] is None:
                return
            params["cursor"] = page["next_cursor"]

    def pause_campaign(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/campaigns/{name}/pause")

    def resume_campaign(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/campaigns/{name}/resume")

    def cancel_campaign(self, name: str) -> dict[str, Any]:
        """Cancel it and its queued rows (``cancelled_rows`` in the answer)."""
        return self._call("POST", f"/campaigns/{name}/cancel")

    # -- accounts -----------------------------------------------------------------------
    def list_accounts(self) -> list[dict[str, Any]]:
        return self._call("GET", "/accounts")["data"]

    def pause_account(self, account_id: int) -> dict[str, Any]:
        return self._call("POST", f"/accounts/{account_id}/pause")

    def resume_account(self, account_id: int) -> dict[str, Any]:
        return self._call("POST", f"/accounts/{account_id}/resume")

    def set_account_limits(self, account_id: int, **limits: int | None) -> dict[str, Any]:
        return self._call("PATCH", f"/accounts/{account_id}/limits", json=limits)

    # -- recurring sends -----------------------------------------------------------------
    def create_recurring(
        self,
        name: str,
        cron: str,
        timezone: str,
        email: dict[str, Any] | None = None,
        *,
        campaign: dict[str, Any] | None = None,
        enabled: bool = True,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Queue ``email`` on ``cron`` read in ``timezone`` (an IANA name); or, given
        ``campaign`` instead (:meth:`create_campaign`'s body: name, message, inline
        recipients), create that campaign anew on every occurrence, as
        ``<campaign name>-<occurrence local time>``."""
        if (email is None) == (campaign is None):
            raise ValueError("give either email or campaign")
        body = {"name": name, "cron": cron, "timezone": timezone, "enabled": enabled}
        body |= {"email": email} if campaign is None else {"kind": "campaign", "campaign": campaign}
        return self._call("POST", "/recurring", json=body, idempotency_key=idempotency_key)

    def create_recurring_campaign(
        self, name: str, cron: str, timezone: str, campaign: dict[str, Any], **options: Any
    ) -> dict[str, Any]:
        """:meth:`create_recurring` of a campaign (``enabled``, ``idempotency_key``)."""
        return self.create_recurring(name, cron, timezone, campaign=campaign, **options)

    def get_recurring(self, ref: str | int) -> dict[str, Any]:
        """A recurring send (id or name) with its latest occurrences."""
        return self._call("GET", f"/recurring/{ref}")

    def list_recurring(self) -> Iterator[dict[str, Any]]:
        """Every recurring send, by id, fetching page after page."""
        yield from self._pages("/recurring", {})

    def pause_recurring(self, ref: str | int) -> dict[str, Any]:
        return self._call("POST", f"/recurring/{ref}/pause")

    def resume_recurring(self, ref: str | int) -> dict[str, Any]:
        return self._call("POST", f"/recurring/{ref}/resume")

    def delete_recurring(self, ref: str | int) -> None:
        self._call("DELETE", f"/recurring/{ref}")

    # -- personal data ------------------------------------------------------------------
    def export_contact(self, email: str) -> dict[str, Any]:
        """Everything held about ``email`` (admin key; recorded in the audit table)."""
        return self._call("GET", f"/contacts/{quote(email, safe='@+')}/export")

    def erase_contact(self, email: str) -> dict[str, Any]:
        """Erase ``email``'s data, keeping only its hash so it is never mailed again."""
        return self._call("DELETE", f"/contacts/{quote(email, safe='@+')}")

    # -- transport ----------------------------------------------------------------------
    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The items of a keyset-paginated listing, page after page."""
        while True:
            page = self._call("GET", path, params=params)
            yield from page["data"]
            if page["next_cursor"] is None:
                return
            params["cursor"] = page["next_cursor"]

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = dict(headers or {})
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        response = self._send_with_retries(method, path, headers, kwargs)
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else None

    def _send_with_retries(
        self, method: str, path: str, headers: dict[str, str], kwargs: dict[str, Any]
    ) -> httpx.Response:
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError:
                if last:
                    raise
                time.sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(self._delay(attempt, response))
                continue
            return response
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), 60.0)
        return self.backoff_seconds * 2**attempt


def _error(response: httpx.Response) -> ApiError:
    try:
        problem = response.json()
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:200]}
    return ApiError(response.status_code, problem if isinstance(problem, dict) else {})
