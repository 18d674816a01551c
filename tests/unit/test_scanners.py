"""Which opens and clicks look automated."""

from __future__ import annotations

import pytest

from tracking.scanners import scanner_reason

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)


def reason(kind="click", method="GET", agent=CHROME, since=3600.0):
    return scanner_reason(
        kind=kind, method=method, user_agent=agent, seconds_since_sent=since, click_seconds=10.0
    )


@pytest.mark.parametrize(
    "agent",
    [
        CHROME,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 Chrome/120 Mobile",
    ],
)
def test_people_and_webmail_image_proxies_are_not_flagged(agent):
    assert reason(agent=agent) is None


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0)",
        "Slackbot-LinkExpanding 1.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) BingPreview/1.0b",
        "Barracuda Sentinel (EE)",
        "Mimecast URL Protect",
        "Proofpoint URL Defense",
        "python-requests/2.31",
        "curl/8.4.0",
        "Go-http-client/1.1",
        "Microsoft Office Existence Discovery",
        "facebookexternalhit/1.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0",
    ],
)
def test_scanners_libraries_and_previewers_are_flagged(agent):
    assert reason(agent=agent) == "scanner_user_agent"


def test_head_requests_missing_agents_and_instant_clicks():
    assert reason(method="HEAD") == "head_request"
    assert reason(agent="  ") == "no_user_agent"
    assert reason(since=2.0) == "too_soon"
    assert reason(kind="open", since=2.0) is None  # opens are not judged by timing
    assert reason(since=11.0) is None
