"""Address validation: RFC 5321/5322 syntax, and nothing else unless asked.

Whether a domain takes mail is the receiving SMTP server's call: intranet relays and
test setups use special-use domains (``.test``, ``.local``, ``.internal``, ``localhost``
...), so they are valid by default. ``MAILER_REJECT_SPECIAL_USE_DOMAINS=1``
(``reject_special_use``) refuses them, against email-validator's list of IANA special-use
names plus ``.alt`` (RFC 9476) and ``.internal`` (reserved by ICANN for private use),
kept here as :data:`SPECIAL_USE_DOMAINS`.

email-validator always applies that list; its documented knob is the module-level
``SPECIAL_USE_DOMAIN_NAMES``. Importing this module empties it, so every validation in a
Mailer process (rows, account addresses, suppressions) checks syntax only, and the opt-in
check is this module's own.

An internationalized local part needs SMTPUTF8 (:attr:`Address.needs_smtputf8`); an
internationalized domain is written in its ASCII (punycode) form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import email_validator
from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from mailer.errors import InvalidMessageError

#: Domains (and their subdomains) that are never globally deliverable: email-validator's
#: IANA list as shipped, plus ``alt`` and ``internal``.
SPECIAL_USE_DOMAINS: tuple[str, ...] = (
    *email_validator.SPECIAL_USE_DOMAIN_NAMES,
    "alt",
    "internal",
)
email_validator.SPECIAL_USE_DOMAIN_NAMES = []

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
#: The everyday address (an ASCII dot-atom local part, ASCII labels and an alphabetic
#: top-level domain): decided without email-validator, which costs about 0.1 ms an
#: address (half the time of a 500-message API batch). Anything else goes through it;
#: tests/unit/test_addresses.py checks both paths agree on every address this matches.
_EVERYDAY = re.compile(
    rf"(?P<local>{_ATEXT}{{1,64}}(?:\.{_ATEXT}+)*)@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)


@dataclass(frozen=True)
class Address:
    """A valid address as it goes into the envelope and headers."""

    #: ``local@domain`` with the domain in ASCII (punycode).
    envelope: str
    #: True when the local part is not ASCII: only an SMTPUTF8 server can take it.
    needs_smtputf8: bool


def validated_address(
    address: str, *, what: str = "to_address", reject_special_use: bool = False
) -> Address:
    """``address`` checked, or InvalidMessageError naming ``what`` and the problem."""
    if "\r" in address or "\n" in address:
        raise InvalidMessageError(f"{what} contains CR/LF")
    return _validated(address.strip(), what, reject_special_use)


@lru_cache(maxsize=4096)
def _validated(address: str, what: str, reject_special_use: bool) -> Address:
    found = everyday_address(address)
    if found is None:
        try:
            result = parse_syntax(address)
        except EmailNotValidError as exc:
            raise InvalidMessageError(f"invalid {what} {address!r}: {exc}") from None
        found = Address(f"{result.local_part}@{result.ascii_domain}", bool(result.smtputf8))
    domain = found.envelope.rpartition("@")[2].lower()
    if reject_special_use and is_special_use(domain):
        raise InvalidMessageError(
            f"invalid {what} {address!r}: {domain} is a special-use domain name, refused "
            "because MAILER_REJECT_SPECIAL_USE_DOMAINS is set"
        )
    return found


def everyday_address(address: str) -> Address | None:
    """``address`` as email-validator would give it back, if it is an everyday one (see
    :data:`_EVERYDAY`); None means: ask email-validator."""
    match = _EVERYDAY.fullmatch(address)
    if match is None or len(address) > 254 or len(match["local"]) > 64:
        return None
    domain = match["domain"]
    if "--" in domain or len(domain) > 253:
        return None
    return Address(f"{match['local']}@{domain.lower()}", False)


def parse_syntax(address: str) -> ValidatedEmail:
    """``address`` parsed by email-validator, RFC 5321/5322 syntax only (no DNS, any
    domain, internationalized parts allowed); EmailNotValidError saying why not."""
    return validate_email(
        address, check_deliverability=False, allow_smtputf8=True, globally_deliverable=False
    )


def validated_domain(domain: str, *, what: str = "domain") -> str:
    """``domain`` as a mail domain takes it (what may follow the @ of an address;
    internationalized names allowed), in lower-case ASCII without a final dot; or
    InvalidMessageError naming ``what`` and the problem."""
    text = domain.strip().rstrip(".")
    try:
        return parse_syntax(f"postmaster@{text}").ascii_domain.lower()
    except EmailNotValidError as exc:
        reason = str(exc).replace("The part after the @-sign", "It")  # no @ was typed
        if "@" in reason.replace("'@'", ""):
            reason = "it is not a mail domain name."
        raise InvalidMessageError(f"invalid {what} {domain!r}: {reason}") from None


def comparable_domain(domain: str) -> str:
    """``domain`` as :func:`validated_domain` gives it, so that two spellings of one name
    (Unicode or punycode, any case, a final dot) compare equal; one that is not a mail
    domain (written before domains were checked) lower-cased, without a final dot."""
    try:
        return validated_domain(domain)
    except InvalidMessageError:
        return domain.lower().rstrip(".")


def is_special_use(ascii_domain: str) -> bool:
    """Whether ``ascii_domain`` is, or is under, an IANA special-use name."""
    domain = ascii_domain.lower().rstrip(".")
    return any(domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAINS)
