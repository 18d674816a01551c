"""``List-Id`` and ``Feedback-ID`` on bulk mail, so mailbox providers can attribute it.

Bulk mail (every row that is not transactional) gets ``List-Id: <campaign.domain>``
(RFC 2919; the campaign as a label, ``default`` without one, under the sending
account's domain) and ``Feedback-ID: campaign:account:mailer`` (Gmail's feedback loop:
its last field identifies the sender, the others are what complaints get counted by).
Transactional mail gets neither. A row that sets either header itself keeps its own.
"""

from __future__ import annotations

import re

from mailer.models import QueuedEmail, SenderAccount
from mailer.render import Draft

SENDER_ID = "mailer"
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def campaign_label(campaign: str | None) -> str:
    """``campaign`` as a DNS-label-like word (lower case, digits, hyphens)."""
    label = _NOT_LABEL.sub("-", (campaign or "").lower()).strip("-")[:63].strip("-")
    return label or "default"


def add_feedback_headers(draft: Draft, row: QueuedEmail, account: SenderAccount) -> None:
    """The post-render hook (see module docstring)."""
    if row.transactional:
        return
    label = campaign_label(row.campaign)
    if "List-Id" not in draft:
        draft.add_header("List-Id", f"<{label}.{account.domain}>")
    if "Feedback-ID" not in draft:
        draft.add_header("Feedback-ID", f"{label}:{account.id}:{SENDER_ID}")
