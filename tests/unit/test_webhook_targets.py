"""The SSRF guard and the Standard Webhooks signature, without any network traffic: IP
literals resolve to themselves, and nothing here connects anywhere."""

from __future__ import annotations

import ipaddress
import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mailer.webhook_signing import new_secret, signed_headers
from mailer.webhook_targets import TargetRefused, check_addresses, checked_target


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.5", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("100.64.0.1", "not globally routable"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=f"is {reason}"):
        check_addresses([address], allow_private=False)
    assert check_addresses([address], allow_private=True) == ipaddress.ip_address(address)


def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    with pytest.raises(TargetRefused, match=r"10\.0\.0\.7 is private"):
        check_addresses(["93.184.216.34", "10.0.0.7"], allow_private=False)
    assert str(check_addresses(["93.184.216.34"], allow_private=False)) == "93.184.216.34"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/h", "https://10.0.0.1/h", "http://169.254.169.254/latest"]
)
async def test_urls_of_private_literals_are_refused_at_resolution(url: str) -> None:
    with pytest.raises(TargetRefused, match="MAILER_WEBHOOKS_ALLOW_PRIVATE"):
        await checked_target(url, allow_private=False)


async def test_a_checked_target_connects_to_the_checked_address_and_keeps_the_host() -> None:
    target = await checked_target("https://localhost:8443/x?y=1", allow_private=True)
    assert target.url.host in ("127.0.0.1", "::1")
    assert (target.url.port, target.url.path, target.url.query) == (8443, "/x", b"y=1")
    assert target.headers == {"host": "localhost:8443"}
    assert target.extensions == {"sni_hostname": "localhost"}


def test_signatures_verify_with_the_standardwebhooks_package() -> None:
    import time

    secret = new_secret()
    assert secret.startswith("whsec_")
    body = json.dumps({"type": "email.sent", "data": {"email_id": 1}})
    headers = signed_headers(secret, "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("1", "2"), headers)
