"""MIME serialisation of Mailer's messages, straight to bytes (RFC 5322, 2045-2047).

Mailer's messages have one shape: a handful of headers and a text and/or an HTML body
(both make a ``multipart/alternative``). Building them with the ``email`` package's object
model costs about a millisecond a message, most of it parsing header values Mailer has
just validated; this module writes the same messages directly and leaves the ``email``
package to the rare header it cannot write itself (a non-ASCII value of a structured
header such as ``Reply-To``).

Output guarantees: CRLF line endings; only ASCII; headers folded at whitespace to 78
characters where the value allows, and never a line over 998 octets (a value that
cannot be folded short enough is RFC 2047 encoded); non-ASCII header text as RFC 2047
``B`` encoded words of UTF-8; bodies as ``7bit`` when ASCII with short lines, else
``quoted-printable`` or ``base64`` (whichever is shorter) of UTF-8; multipart boundaries
random and absent from every encoded body. Parsing the output with
``email.parser.BytesParser(policy=email.policy.default)`` gives back the header values
and body texts (line breaks as CRLF, ending in one) that were passed in.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from email import policy
from email.headerregistry import Address, UnstructuredHeader

CRLF = "\r\n"
#: Preferred longest header line (RFC 5322 2.1.1 "SHOULD"), without the CRLF.
LINE_LENGTH = 78
#: Longest line allowed anywhere (RFC 5322 2.1.1 "MUST"), without the CRLF.
MAX_LINE_LENGTH = 998
#: Longest body line sent as 7bit; longer lines make a part quoted-printable.
MAX_7BIT_LINE = 989

_PRINTABLE = re.compile(r"[\t\x20-\x7e]*")
_WORD = re.compile(r"[ \t]*[^ \t]+")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_QUOTED_SPECIALS = re.compile(r'(["\\])')
#: A dot-atom addr-spec in ASCII (what email-validator returns for a recipient).
_ADDR_SPEC = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_LONG_LINE = re.compile(rf"[^\r\n]{{{MAX_7BIT_LINE + 1}}}")
_ENCODED_WORD_OVERHEAD = len("=?utf-8?b??=")
#: Header names the ``email`` package parses as structured values (addresses, dates...).
STRUCTURED = frozenset(
    name
    for name, cls in policy.SMTP.header_factory.registry.items()
    if not issubclass(cls, UnstructuredHeader)
)


def header(name: str, value: str) -> str:
    """The header line(s) ``Name: value`` ending in CRLF.

    ``value`` must hold no CR, LF or NUL (the caller checks). Printable ASCII is kept as
    it is, folded at whitespace; anything else is encoded (unstructured text as encoded
    words, a structured header by the ``email`` package, as before)."""
    line = f"{name}: {value}"
    if _PRINTABLE.fullmatch(value):
        if len(line) <= LINE_LENGTH:
            return line + CRLF
        folded = fold(line, len(name) + 2)
        if folded is not None:
            return folded
    if name.lower() in STRUCTURED:
        return _reference_fold(name, value)
    return f"{name}: {encoded_words(value, len(name) + 2)}{CRLF}"


def address_header(name: str, display_name: str, addr_spec: str) -> str:
    """``Name: Display Name <addr@spec>`` (just the address without a display name),
    ending in CRLF. The name is an atom phrase, a quoted string, or encoded words. Any
    other ``addr_spec`` than a plain ASCII dot-atom one is the ``email`` package's to
    check (ValueError if invalid) and write; a non-ASCII one (SMTPUTF8) is written as
    UTF-8 (RFC 6532)."""
    if not addr_spec.isascii():
        local, _, domain = addr_spec.rpartition("@")
        value = Address(display_name=display_name, username=local, domain=domain)
        return _reference_fold(name, value, utf8=True)
    if not _ADDR_SPEC.fullmatch(addr_spec):
        return _reference_fold(name, Address(display_name=display_name, addr_spec=addr_spec))
    if not display_name:
        return header(name, addr_spec)
    phrase = _phrase(display_name)
    if phrase is not None:
        line = f"{name}: {phrase} <{addr_spec}>"
        folded = line + CRLF if len(line) <= LINE_LENGTH else fold(line, len(name) + 2)
        if folded is not None:
            return folded
    start = f"{name}: {encoded_words(display_name, len(name) + 2)}"
    last_line = len(start) - (start.rfind("\n") + 1)
    separator = " " if last_line + len(addr_spec) + 3 <= LINE_LENGTH else CRLF + " "
    return f"{start}{separator}<{addr_spec}>{CRLF}"


def fold(line: str, prefix: int) -> str | None:
    """``line`` (``Name: value``, printable ASCII) folded before whitespace so lines stay
    within LINE_LENGTH where words allow, ending in CRLF; None if a word is too long for
    MAX_LINE_LENGTH. The first ``prefix`` characters (``Name: ``) are never split off."""
    words = _WORD.findall(line, prefix)
    trailing = line[prefix + sum(map(len, words)) :]
    if not words:
        return line + CRLF if len(line) <= MAX_LINE_LENGTH else None
    lines = [line[:prefix] + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + len(word) > LINE_LENGTH:
            lines.append(word)
        else:
            lines[-1] += word
    lines[-1] += trailing
    if any(len(part) > MAX_LINE_LENGTH for part in lines):
        return None
    return CRLF.join(lines) + CRLF


def encoded_words(text: str, used: int) -> str:
    """``text`` as RFC 2047 encoded words (``B``, UTF-8) joined by CRLF SP, each line
    within 76 characters given that the first already holds ``used`` (with no room left
    there, the words start on the next line). Every word holds whole characters;
    decoders join adjacent encoded words without the whitespace between them."""
    data = text.encode("utf-8")
    lines: list[str] = []
    room = 76 - used
    if room - _ENCODED_WORD_OVERHEAD < 8:
        lines.append("")
        room = 75
    start = 0
    while True:
        end = min(start + (room - _ENCODED_WORD_OVERHEAD) // 4 * 3, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        lines.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode('ascii')}?=")
        start, room = end, 75
        if start >= len(data):
            return (CRLF + " ").join(lines)


def body_part(body: str) -> tuple[str, bytes]:
    """``(Content-Transfer-Encoding, payload)`` for a text body: line breaks made CRLF, a
    final CRLF added if missing; 7bit if the result is ASCII without NUL and its lines
    are short, else the shorter of quoted-printable and base64 of its UTF-8."""
    if "\r" in body:
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    text = body.replace("\n", CRLF)
    if not text.endswith(CRLF):
        text += CRLF
    if text.isascii() and "\0" not in text and not _LONG_LINE.search(text):
        return "7bit", text.encode("ascii")
    data = text.encode("utf-8")
    quoted = binascii.b2a_qp(data, istext=True)
    if len(quoted) * 3 <= len(data) * 4:  # base64 is at least 4/3 of the data
        return "quoted-printable", quoted
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return ("quoted-printable", quoted) if len(quoted) <= len(b64) else ("base64", b64)


def message_bytes(headers: list[str], html: str | None, text: str | None) -> bytes:
    """The whole message: ``headers`` (each a folded line from :func:`header`), then the
    MIME headers and body: text/plain, text/html, or multipart/alternative of both.
    Headers are ASCII except an SMTPUTF8 address, written as UTF-8."""
    head = "".join(headers) + "MIME-Version: 1.0" + CRLF
    if html is not None and text is not None:
        return _alternative(head, [("plain", *body_part(text)), ("html", *body_part(html))])
    if html is not None:
        subtype, body = "html", html
    elif text is not None:
        subtype, body = "plain", text
    else:
        raise ValueError("a message needs a text or an HTML body")
    cte, payload = body_part(body)
    return (head + _part_headers(subtype, cte) + CRLF).encode() + payload


def _alternative(head: str, parts: list[tuple[str, str, bytes]]) -> bytes:
    """``head`` and a multipart/alternative of ``parts`` (subtype, CTE, payload)."""
    boundary = _boundary([payload for _, _, payload in parts])
    top = f'{head}Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}'
    out = [top.encode()]
    for subtype, cte, payload in parts:
        out.append(f"{CRLF}--{boundary}{CRLF}{_part_headers(subtype, cte)}{CRLF}".encode("ascii"))
        out.append(payload)
    out.append(f"{CRLF}--{boundary}--{CRLF}".encode("ascii"))
    return b"".join(out)


def _part_headers(subtype: str, cte: str) -> str:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}Content-Transfer-Encoding: {cte}{CRLF}'
    )


def _boundary(payloads: list[bytes]) -> str:
    """A random boundary found in none of ``payloads`` (``=_`` cannot occur in
    quoted-printable or base64 at all; a 7bit body is checked)."""
    while True:
        boundary = "=_" + secrets.token_hex(16)
        encoded = boundary.encode("ascii")
        if not any(encoded in payload for payload in payloads):
            return boundary


def _phrase(display_name: str) -> str | None:
    """``display_name`` as an RFC 5322 phrase in plain ASCII: atoms as they are, other
    printable text as a quoted string; None when it needs encoded words."""
    if _ATOMS.fullmatch(display_name):
        return display_name
    if _PRINTABLE.fullmatch(display_name):
        return '"' + _QUOTED_SPECIALS.sub(r"\\\1", display_name) + '"'
    return None


def _reference_fold(name: str, value: object, *, utf8: bool = False) -> str:
    """The header as the ``email`` package (policy SMTP, or SMTPUTF8) writes it."""
    writer = policy.SMTPUTF8 if utf8 else policy.SMTP
    folded: str = writer.header_factory(name, value).fold(policy=writer)
    return folded
