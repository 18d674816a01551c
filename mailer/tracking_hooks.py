"""What tracking adds to a message as it is rendered: the Worker's default render hooks.

* :meth:`TrackingHooks.variables` gives every template ``{{ unsubscribe_url }}`` (empty
  for transactional mail, which has no unsubscribe).
* :meth:`TrackingHooks.post_render` rewrites the HTML's links to
  ``MAILER_BASE_URL/track/click/<token>``, adds the open pixel
  ``MAILER_BASE_URL/track/open/<token>`` and gives bulk mail ``List-Unsubscribe`` (an
  https one-click URL and a mailto) and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
  (RFC 8058).

Which of these a row gets is :func:`tracking_policy`, a pure function of the row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from mailer.config import Settings
from mailer.models import QueuedEmail, SenderAccount
from mailer.render import _cte
from mailer.tokens import ClickToken, OpenToken, TokenCodec, UnsubscribeToken
from mailer.tracking_links import is_trackable, pixel_html, rewrite_links

ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class TrackingPolicy:
    """What the message of one row gets."""

    opens: bool
    clicks: bool
    unsubscribe: bool


def tracking_policy(row: QueuedEmail) -> TrackingPolicy:
    """Bulk mail (the default) is tracked and unsubscribable; transactional mail is neither
    unless its row or campaign switches tracking on. ``track_opens``/``track_clicks`` set
    on the row (or its campaign) win over the default either way."""
    bulk = not row.transactional
    return TrackingPolicy(
        opens=bulk if row.track_opens is None else row.track_opens,
        clicks=bulk if row.track_clicks is None else row.track_clicks,
        unsubscribe=bulk,
    )


class UnfoldedHeader(str):
    """A header value the email package must not re-encode: URIs stay byte-exact, one per
    line (``email`` would otherwise turn a long URI into RFC 2047 encoded words, which
    mailbox providers do not decode in ``List-Unsubscribe``)."""

    name: str
    parts: tuple[str, ...]

    def __new__(cls, name: str, parts: tuple[str, ...]) -> UnfoldedHeader:
        value = super().__new__(cls, ", ".join(parts))
        value.name, value.parts = name, parts
        return value

    def fold(self, *, policy: Any) -> str:
        """``Name: part1,<CRLF> part2<CRLF>``: folded between URIs only."""
        return f"{self.name}: " + ("," + policy.linesep + " ").join(self.parts) + policy.linesep


class TrackingHooks:
    """Render hooks for one worker: tokens from ``codec``, links under ``base_url``."""

    def __init__(
        self, settings: Settings, codec: TokenCodec, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.base_url = settings.base_url.rstrip("/")
        self.mailto = settings.unsubscribe_mailto
        self.codec = codec
        self.clock = clock

    # -- URLs --------------------------------------------------------------------------

    def unsubscribe_url(self, row: QueuedEmail) -> str:
        token = self.codec.unsubscribe_token(UnsubscribeToken(row.id, row.to_address.strip()))
        return f"{self.base_url}/unsubscribe/{token}"

    def open_url(self, row: QueuedEmail, issued_at: int) -> str:
        return f"{self.base_url}/track/open/{self.codec.open_token(OpenToken(row.id, issued_at))}"

    def click_url(self, row: QueuedEmail, issued_at: int, link: int, url: str) -> str:
        token = self.codec.click_token(ClickToken(row.id, issued_at, link, url))
        return f"{self.base_url}/track/click/{token}"

    # -- hooks ---------------------------------------------------------------------------

    def variables(self, row: QueuedEmail, account: SenderAccount) -> dict[str, str]:
        """Template variables: ``unsubscribe_url`` (empty for transactional mail)."""
        policy = tracking_policy(row)
        return {"unsubscribe_url": self.unsubscribe_url(row) if policy.unsubscribe else ""}

    def post_render(self, msg: EmailMessage, row: QueuedEmail, account: SenderAccount) -> None:
        """Rewrite links, add the pixel and the List-Unsubscribe headers, as the row's
        :func:`tracking_policy` says. A row that sets its own ``List-Unsubscribe`` header
        keeps it (and gets no ``List-Unsubscribe-Post`` from Mailer)."""
        policy = tracking_policy(row)
        if policy.opens or policy.clicks:
            self._track_html(msg, row, policy)
        if policy.unsubscribe and "List-Unsubscribe" not in msg:
            self._add_unsubscribe_headers(msg, row, account)

    def _track_html(self, msg: EmailMessage, row: QueuedEmail, policy: TrackingPolicy) -> None:
        issued_at = int(self.clock())
        skip = (self.base_url + "/unsubscribe/", self.base_url + "/track/")

        def rewrite(link: int, url: str) -> str | None:
            if not policy.clicks or not is_trackable(url, skip_prefixes=skip):
                return None
            return self.click_url(row, issued_at, link, url)

        pixel = pixel_html(self.open_url(row, issued_at)) if policy.opens else None
        for part in msg.walk():
            if part.get_content_type() != "text/html" or part.is_attachment():
                continue
            html = rewrite_links(part.get_content(), rewrite, pixel=pixel)
            part.set_content(html, subtype="html", cte=_cte(html))

    def _add_unsubscribe_headers(
        self, msg: EmailMessage, row: QueuedEmail, account: SenderAccount
    ) -> None:
        url = self.unsubscribe_url(row)
        token = url.rpartition("/")[2]
        mailto = f"mailto:{self.mailto or account.email}?subject={quote('unsubscribe ' + token)}"
        msg["List-Unsubscribe"] = UnfoldedHeader("List-Unsubscribe", (f"<{url}>", f"<{mailto}>"))
        msg["List-Unsubscribe-Post"] = ONE_CLICK
