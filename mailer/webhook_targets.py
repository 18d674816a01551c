"""Where a webhook may be sent (SSRF guard): the target host is resolved at send time and
every address it resolves to must be globally routable, unless the operator allows
private targets (``MAILER_WEBHOOKS_ALLOW_PRIVATE=1``, for intranet receivers and tests).

The request then goes to the address that was checked (the URL's host is kept for the
``Host`` header and TLS SNI/certificate checks), so a DNS answer that changes between the
check and the connection (rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from mailer.errors import MailerError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(MailerError):
    """The target cannot be resolved, or resolves to an address webhooks may not reach."""


@dataclass(frozen=True)
class Target:
    """A checked request target: the URL to connect to and what keeps the original host."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be a webhook target, or None when it may."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    for reason, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    ):
        if flag:
            return f"{address} is {reason}"
    return None


def check_addresses(addresses: list[str], *, allow_private: bool) -> IPAddress:
    """The first address, after checking every one; TargetRefused names the first bad one."""
    parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if not parsed:
        raise TargetRefused("the host resolves to no address")
    if not allow_private:
        for address in parsed:
            reason = refusal(address)
            if reason:
                raise TargetRefused(
                    f"refused: {reason} (set MAILER_WEBHOOKS_ALLOW_PRIVATE=1 to allow)"
                )
    return parsed[0]


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_target(url: str, *, allow_private: bool) -> Target:
    """Resolve and check ``url``'s host; the request goes to the checked address."""
    parsed = httpx.URL(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    address = check_addresses(await resolve(host, port), allow_private=allow_private)
    return Target(
        url=parsed.copy_with(host=str(address)),
        headers={"host": parsed.netloc.decode("ascii")},
        extensions={"sni_hostname": host},
    )
