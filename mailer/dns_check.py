"""``mailer dns-check``: the SPF, DKIM and DMARC records a sending domain needs, and
whether DNS has them.

:func:`expected_records` says what to publish, from the domain's accounts (Gmail accounts
need Google's SPF include, SMTP accounts their relay) and its DKIM key.
:func:`check_domain` compares that with what DNS answers (a ``lookup`` returning a name's
TXT strings), so the checks are pure and the resolver is :func:`dns_lookup` (dnspython,
the system's resolvers or ``MAILER_DNS_NAMESERVER``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.exception
import dns.resolver

from mailer.dkim_keys import DkimKey
from mailer.models import SenderAccount

#: TXT strings of a name: [] when it has none, None when DNS did not answer.
Lookup = Callable[[str], list[str] | None]
GOOGLE_SPF = "include:_spf.google.com"
#: Seconds one lookup may take, retries included.
DEFAULT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Finding:
    """One record: where it goes, what it should say, what DNS has."""

    kind: str  # SPF | DKIM | DMARC
    name: str
    expected: str
    status: str  # ok | missing | wrong | warning | unknown
    detail: str

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "warning")


def spf_mechanisms(accounts: Iterable[SenderAccount]) -> list[str]:
    """What the SPF record must allow: Google for Gmail accounts, each SMTP relay."""
    wanted: list[str] = []
    for account in accounts:
        mechanism = GOOGLE_SPF if account.backend == "gmail" else f"a:{account.smtp_host}"
        if (account.backend == "gmail" or account.smtp_host) and mechanism not in wanted:
            wanted.append(mechanism)
    return wanted


def check_domain(
    domain: str, lookup: Lookup, accounts: list[SenderAccount], key: DkimKey | None
) -> list[Finding]:
    """The three findings for ``domain``."""
    domain = domain.lower().rstrip(".")
    return [
        check_spf(domain, lookup, spf_mechanisms(accounts)),
        check_dkim(domain, lookup, key, any(a.backend == "gmail" for a in accounts)),
        check_dmarc(domain, lookup),
    ]


def check_spf(domain: str, lookup: Lookup, mechanisms: list[str]) -> Finding:
    expected = " ".join(["v=spf1", *mechanisms, "~all"])
    answer = lookup(domain)
    if answer is None:
        return Finding("SPF", domain, expected, "unknown", "DNS did not answer")
    records = [t for t in answer if t.lower().startswith("v=spf1")]
    if not records:
        return Finding("SPF", domain, expected, "missing", "no v=spf1 TXT record")
    if len(records) > 1:
        return Finding("SPF", domain, expected, "wrong", "more than one SPF record (RFC 7208 4.5)")
    terms = records[0].lower().split()
    if terms[-1] in ("+all", "all", "?all"):
        return Finding("SPF", domain, expected, "wrong", f"ends in {terms[-1]}: anyone may send")
    absent = [m for m in mechanisms if m.lower() not in terms]
    if absent:
        detail = f"has {records[0]!r} without {', '.join(absent)}"
        if any(t.startswith(("include:", "redirect=")) for t in terms):
            return Finding(
                "SPF", domain, expected, "warning", detail + " (unless an include has it)"
            )
        return Finding("SPF", domain, expected, "wrong", detail)
    return Finding("SPF", domain, expected, "ok", records[0])


def check_dkim(domain: str, lookup: Lookup, key: DkimKey | None, gmail: bool) -> Finding:
    if key is None:
        where = "Google Workspace signs Gmail accounts' mail (Admin console > Gmail > "
        detail = (
            where + "Authenticate email); SMTP accounts need a key"
            if gmail
            else "no DKIM key for this domain"
        )
        advice = f"mailer dkim generate {domain}"
        return Finding("DKIM", f"<selector>._domainkey.{domain}", advice, "missing", detail)
    answer = lookup(key.record_name)
    if answer is None:
        return Finding("DKIM", key.record_name, key.txt_record, "unknown", "DNS did not answer")
    if not answer:
        return Finding("DKIM", key.record_name, key.txt_record, "missing", "no TXT record")
    tags = dkim_tags("".join(answer))
    if tags.get("p", "").replace(" ", "") != key.public_key:
        detail = "the published p= is not this key's public key"
        return Finding("DKIM", key.record_name, key.txt_record, "wrong", detail)
    want_k = "ed25519" if key.algorithm == "ed25519-sha256" else "rsa"
    if tags.get("k", "rsa") != want_k:
        return Finding("DKIM", key.record_name, key.txt_record, "wrong", f"k= is not {want_k}")
    return Finding("DKIM", key.record_name, key.txt_record, "ok", f"{key.algorithm} key found")


def check_dmarc(domain: str, lookup: Lookup) -> Finding:
    name = f"_dmarc.{domain}"
    expected = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"
    answer = lookup(name)
    if answer is None:
        return Finding("DMARC", name, expected, "unknown", "DNS did not answer")
    records = [t for t in answer if t.replace(" ", "").upper().startswith("V=DMARC1")]
    if not records:
        return Finding("DMARC", name, expected, "missing", "no v=DMARC1 TXT record")
    if len(records) > 1:
        return Finding("DMARC", name, expected, "wrong", "more than one DMARC record")
    policy = dkim_tags(records[0]).get("p", "")
    if policy not in ("none", "quarantine", "reject"):
        return Finding("DMARC", name, expected, "wrong", "p= must be none, quarantine or reject")
    if policy == "none":
        return Finding("DMARC", name, expected, "warning", "p=none: reports only, no protection")
    return Finding("DMARC", name, expected, "ok", records[0])


def dkim_tags(text: str) -> dict[str, str]:
    """``tag=value; ...`` (DKIM and DMARC records) as a dict, tags lower-cased."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        tag, sep, value = part.partition("=")
        if sep:
            tags[tag.strip().lower()] = value.strip()
    return tags


def split_nameserver(text: str) -> tuple[str, int]:
    """``address``, ``address:port`` or ``[v6]:port`` as (address, port); ValueError
    saying what it must be (dnspython asks nameservers by IP address, not by name)."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        host, port = host.rstrip("]"), port or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ValueError(
            "MAILER_DNS_NAMESERVER must be an IP address with an optional :port "
            f"(127.0.0.1:5353, [::1]:53), not {text!r}"
        )
    return host, number


def dns_lookup(nameserver: str = "", timeout: float | None = None) -> Lookup:
    """A :data:`Lookup` over dnspython: the system's resolvers, or ``nameserver`` (an IP
    address with an optional port, see :func:`split_nameserver`)."""
    if nameserver:
        host, port = split_nameserver(nameserver)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = DEFAULT_TIMEOUT if timeout is None else timeout

    def lookup(name: str) -> list[str] | None:
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException:
            return None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    return lookup
