"""Security scanners and link prefetchers: opens and clicks no person made.

Corporate mail gateways (Proofpoint, Mimecast, Barracuda, Microsoft Defender Safe Links,
...) fetch every link of a message as it arrives, chat apps prefetch previews, and some
clients probe links with HEAD. Their opens and clicks are still recorded, flagged
``suspected_bot``, so engagement figures can leave them out. :func:`scanner_reason` is
the per-request policy (pure); the "every link of one message at once" rule needs the
message's other clicks and runs in SQL (``insert_events``).
"""

from __future__ import annotations

import re

#: User agents of scanners, crawlers, preview fetchers and HTTP libraries (lower case).
#: Image proxies of webmail (GoogleImageProxy, YahooMailProxy) are real opens: not here.
SCANNER_AGENTS = re.compile(
    r"bot(?:[/\-;)_]|$)|crawler|spider|slurp|preview|scanner|urlscan|safelinks|"
    r"barracuda|mimecast|proofpoint|ppops|symantec|messagelabs|trendmicro|forcepoint|"
    r"sophos|fortiguard|fortinet|ironport|zscaler|checkpoint|cloudmark|"
    r"microsoft office existence discovery|ms-office|skypeuripreview|"
    r"facebookexternalhit|whatsapp|python-requests|python-urllib|aiohttp|httpx|curl/|"
    r"wget/|go-http-client|okhttp|java/|libwww-perl|apache-httpclient|headlesschrome|"
    r"phantomjs|zgrab|nmap"
)


def scanner_reason(
    *,
    kind: str,
    method: str,
    user_agent: str,
    seconds_since_sent: float | None,
    click_seconds: float,
) -> str | None:
    """Why this open or click looks automated, or None for a person.

    ``head_request``: a HEAD probe; ``no_user_agent``; ``scanner_user_agent``: a known
    scanner or library; ``too_soon``: a click within ``click_seconds`` of the message
    being sent, faster than any reader.
    """
    if method.upper() == "HEAD":
        return "head_request"
    agent = user_agent.strip().lower()
    if not agent:
        return "no_user_agent"
    if SCANNER_AGENTS.search(agent):
        return "scanner_user_agent"
    if kind == "click" and seconds_since_sent is not None and seconds_since_sent < click_seconds:
        return "too_soon"
    return None
