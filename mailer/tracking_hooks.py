"""What tracking adds to a message as it is rendered: the Worker's default render hooks.

* :meth:`TrackingHooks.variables` gives every template ``{{ unsubscribe_url }}`` (empty
  for transactional mail, which has no unsubscribe).
* :meth:`TrackingHooks.post_render` rewrites the HTML body's links to
  ``MAILER_BASE_URL/track/click/<token>``, adds the open pixel
  ``MAILER_BASE_URL/track/open/<token>`` and gives bulk mail ``List-Unsubscribe`` (an
  https one-click URL and a mailto) and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
  (RFC 8058). It works on the :class:`~mailer.render.Draft` (body strings and extra
  headers), before the message is serialised.

Which of these a row gets is :func:`tracking_policy`, a pure function of the row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mailer.config import Settings
from mailer.models import QueuedEmail, SenderAccount
from mailer.render import Draft
from mailer.tokens import ClickToken, OpenToken, TokenCodec, UnsubscribeToken
from mailer.tracking_links import is_trackable, pixel_html, rewrite_links

ONE_CLICK = "List-Unsubscribe=One-Click"
#: The names :meth:`TrackingHooks.variables` gives every templated row.
TEMPLATE_VARIABLES = ("unsubscribe_url",)


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


class TrackingHooks:
    """Render hooks for one worker: tokens from ``codec``, links under ``base_url``."""

    def __init__(
        self, settings: Settings, codec: TokenCodec, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.base_url = settings.base_url.rstrip("/")
        self.mailto = settings.unsubscribe_mailto
        self.codec = codec
        self.clock = clock
        # The last row's unsubscribe URL: variables() and post_render() both need it
        # (tokens are deterministic, so this only saves sealing it twice).
        self._last_unsubscribe: tuple[tuple[int, str], str] | None = None

    # -- URLs --------------------------------------------------------------------------

    def unsubscribe_url(self, row: QueuedEmail) -> str:
        key = (row.id, row.to_address)
        if self._last_unsubscribe is not None and self._last_unsubscribe[0] == key:
            return self._last_unsubscribe[1]
        token = self.codec.unsubscribe_token(UnsubscribeToken(row.id, row.to_address.strip()))
        url = f"{self.base_url}/unsubscribe/{token}"
        self._last_unsubscribe = (key, url)
        return url

    def open_url(self, row: QueuedEmail, issued_at: int) -> str:
        return f"{self.base_url}/track/open/{self.codec.open_token(OpenToken(row.id, issued_at))}"

    def click_url(self, row: QueuedEmail, issued_at: int, link: int, url: str) -> str:
        token = self.codec.click_token(ClickToken(row.id, issued_at, link, url))
        return f"{self.base_url}/track/click/{token}"

    # -- hooks ---------------------------------------------------------------------------

    def variables(self, row: QueuedEmail, account: SenderAccount) -> dict[str, str]:
        """Template variables (:data:`TEMPLATE_VARIABLES`): ``unsubscribe_url`` (empty for
        transactional mail)."""
        policy = tracking_policy(row)
        return {"unsubscribe_url": self.unsubscribe_url(row) if policy.unsubscribe else ""}

    def post_render(self, draft: Draft, row: QueuedEmail, account: SenderAccount) -> None:
        """Rewrite links, add the pixel and the List-Unsubscribe headers, as the row's
        :func:`tracking_policy` says. A row that sets its own ``List-Unsubscribe`` header
        keeps it and gets no ``List-Unsubscribe-Post`` from Mailer (only the row knows
        whether its URL takes RFC 8058 one-click POSTs); a row's own
        ``List-Unsubscribe-Post`` is never doubled."""
        policy = tracking_policy(row)
        if draft.html is not None and (policy.opens or policy.clicks):
            draft.html = self.track_html(draft.html, row, policy)
        if policy.unsubscribe and "List-Unsubscribe" not in draft:
            draft.add_header("List-Unsubscribe", self.list_unsubscribe(row, account))
            if "List-Unsubscribe-Post" not in draft:
                draft.add_header("List-Unsubscribe-Post", ONE_CLICK)

    def track_html(self, html: str, row: QueuedEmail, policy: TrackingPolicy) -> str:
        """``html`` with its links made click links (``policy.clicks``) and the open pixel
        added (``policy.opens``); links into the tracking app itself are left alone."""
        issued_at = int(self.clock())
        skip = (self.base_url + "/unsubscribe/", self.base_url + "/track/")

        def rewrite(link: int, url: str) -> str | None:
            if not policy.clicks or not is_trackable(url, skip_prefixes=skip):
                return None
            return self.click_url(row, issued_at, link, url)

        pixel = pixel_html(self.open_url(row, issued_at)) if policy.opens else None
        return rewrite_links(html, rewrite, pixel=pixel)

    def list_unsubscribe(self, row: QueuedEmail, account: SenderAccount) -> str:
        """``<https one-click URL>, <mailto:...>``: URIs only ASCII and without spaces, so
        the header is folded between them and never encoded."""
        url = self.unsubscribe_url(row)
        token = url.rpartition("/")[2]  # base64url: nothing in it needs quoting
        mailto = f"mailto:{self.mailto or account.email}?subject=unsubscribe%20{token}"
        return f"<{url}>, <{mailto}>"
