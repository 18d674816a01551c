"""The fast MIME writer against the ``email`` package as the reference.

Every rendered message is parsed back with ``BytesParser(policy=email.policy.default)``
and must give exactly the headers and bodies that were meant, and the same reading as
the message the old ``EmailMessage``-based renderer (kept here, in :func:`old_bytes`)
built from the same input. Hypothesis draws rows over a wide range (non-ASCII and
control characters, emoji, long and unbreakable words, very long lines, CR/LF mixes);
a parametrized corpus pins down the cases that matter most.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from email import errors, policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailer import mime
from mailer.config import Settings
from mailer.errors import InvalidMessageError
from mailer.models import QueuedEmail, SenderAccount
from mailer.render import RESERVED_HEADERS, Renderer
from mailer.tokens import TokenCodec
from mailer.tracking_hooks import TrackingHooks
from tests.support.rows import sample_account, sample_row

# HYPOTHESIS_PROFILE=thorough draws twenty times as many rows.
for _name, _examples in (("mailer", 150), ("thorough", 3000)):
    settings.register_profile(
        _name,
        database=None,
        deadline=None,
        max_examples=_examples,
        suppress_health_check=[HealthCheck.too_slow],
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "mailer"))

ACCOUNT = sample_account()
ROW = sample_row()
#: What str.splitlines() (so the old renderer) took for line breaks, besides CR and LF.
SPLITLINES_EXTRA = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(data)


def old_bytes(
    row: QueuedEmail,
    account: SenderAccount,
    date: str,
    *,
    subject: str,
    html: str | None,
    text: str | None,
) -> bytes:
    """What the EmailMessage-based renderer built for these (already rendered) parts."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(display_name=account.display_name or "", addr_spec=account.email)
    msg["To"] = Address(display_name=row.to_name or "", addr_spec=row.to_address)
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = row.message_id
    for name, value in (row.headers or {}).items():
        msg[name] = str(value)
    if text is not None:
        msg.set_content(text, subtype="plain", cte=old_cte(text))
        if html is not None:
            msg.add_alternative(html, subtype="html", cte=old_cte(html))
    else:
        msg.set_content(html or "", subtype="html", cte=old_cte(html or ""))
    return msg.as_bytes()


def old_cte(body: str) -> str:
    return (
        "7bit"
        if body.isascii() and all(len(ln) < 990 for ln in body.splitlines())
        else "quoted-printable"
    )


def body_text(body: str) -> str:
    """A body as a reader gets it back: line breaks CRLF, ending in one."""
    body = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    return body if body.endswith("\r\n") else body + "\r\n"


def decoded_body(part: EmailMessage) -> str:
    return part.get_content().replace("\r\n", "\n").replace("\n", "\r\n")


def raw_header(data: bytes, name: str) -> str:
    """The unfolded source of header ``name`` in ``data``."""
    head = (
        data.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n ", " ").replace("\r\n\t", "\t")
    )
    for line in head.split("\r\n"):
        key, _, value = line.partition(":")
        if key.lower() == name.lower():
            return value[1:] if value.startswith(" ") else value
    raise KeyError(name)


def address_reading(data: bytes, name: str) -> tuple[str, str]:
    """(display name, address) of header ``name`` as an RFC 2047 reader gets them.

    ``email.policy.default`` inserts a space between adjacent encoded words of a display
    name (an RFC 2047 violation); :func:`email.header.decode_header` does it right."""
    address = parse(data)[name].addresses[0]
    raw = raw_header(data, name)
    if "=?" not in raw:
        return address.display_name, address.addr_spec
    decoded = str(make_header(decode_header(raw)))
    assert decoded.endswith(f" <{address.addr_spec}>"), decoded
    return decoded[: -len(address.addr_spec) - 3], address.addr_spec


def unstructured(value: object) -> str:
    """An unstructured value as compared: leading whitespace is not part of it (readers
    drop it, except inside an encoded word)."""
    return str(value).lstrip(" \t")


def check_wire_format(data: bytes) -> None:
    """ASCII, CRLF only, no line over 998 octets, header lines over 78 only for a word
    that cannot be broken."""
    assert data.isascii()
    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert all(len(line) <= mime.MAX_LINE_LENGTH for line in lines)
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    for line in head:
        if len(line) > mime.LINE_LENGTH:
            assert len(line.split()) <= 2, line


def check(row: QueuedEmail, account: SenderAccount = ACCOUNT) -> EmailMessage:
    """Render ``row`` (no templates, no hooks) and check every reading of the result,
    then compare it with the old renderer's."""
    rendered = Renderer(max_message_bytes=10**7).render(row, account)
    data = rendered.data
    check_wire_format(data)
    msg = parse(data)
    assert not msg.defects
    for name, (display_name, addr_spec) in addresses(row, account).items():
        assert not format_defects(msg[name])
        if "=?" not in display_name:
            assert address_reading(data, name) == (display_name, addr_spec)
    if "=?" not in (row.subject or ""):  # else readers decode it: see test_encoded_word...
        assert unstructured(msg["Subject"]) == unstructured(row.subject or "")
    assert msg["Message-ID"] == row.message_id
    for name in row.headers or {}:
        values = [v for k, v in (row.headers or {}).items() if k.lower() == name.lower()]
        if not any("=?" in str(v) for v in values):
            assert [unstructured(v) for v in msg.get_all(name)] == [unstructured(v) for v in values]
    check_bodies(msg, row.html_body, row.text_body)
    compare_with_old(row, account, data)
    return msg


def compare_with_old(row: QueuedEmail, account: SenderAccount, data: bytes) -> None:
    """The old renderer's message reads the same, but for whitespace (it lost runs of
    it between encoded words, and in display names) and for what it got wrong: line
    breaks at str.splitlines() separators in bodies, and ValueError for them in headers."""
    msg = parse(data)
    try:
        old_data = old_bytes(
            row,
            account,
            msg["Date"],
            subject=row.subject or "",
            html=row.html_body,
            text=row.text_body,
        )
    except ValueError:
        assert any(
            c in str(v)
            for v in [row.subject, row.to_name, account.display_name, *(row.headers or {}).values()]
            for c in SPLITLINES_EXTRA
        )
        return
    old = parse(old_data)
    assert squeezed(old["Subject"]) == squeezed(msg["Subject"])
    for name, (display_name, _) in addresses(row, account).items():
        # The old renderer could drop a long quoted name's quotes: a broken header.
        if "=?" not in display_name and not format_defects(old[name]):
            assert [squeezed(x) for x in address_reading(old_data, name)] == [
                squeezed(x) for x in address_reading(data, name)
            ]
    for name in row.headers or {}:
        assert [squeezed(v) for v in old.get_all(name)] == [squeezed(v) for v in msg.get_all(name)]
    assert old.get_content_type() == msg.get_content_type()
    bodies = (row.html_body or "") + (row.text_body or "")
    if not any(c in bodies for c in SPLITLINES_EXTRA):
        for kind in ("plain", "html"):
            new_part, old_part = msg.get_body((kind,)), old.get_body((kind,))
            assert (new_part is None) == (old_part is None)
            if new_part is not None and old_part is not None:
                assert decoded_body(new_part) == decoded_body(old_part)


def format_defects(header: object) -> list[object]:
    """A parsed header's defects but NonPrintableDefect (control characters in the text
    that was meant: a remark on the content, not on how it was written)."""
    return [
        d for d in getattr(header, "defects", ()) if not isinstance(d, errors.NonPrintableDefect)
    ]


def addresses(row: QueuedEmail, account: SenderAccount) -> dict[str, tuple[str, str]]:
    """The (display name, address) meant for From and To."""
    return {
        "From": (account.display_name or "", account.email),
        "To": (row.to_name or "", row.to_address),
    }


def squeezed(value: object) -> str:
    return re.sub(r"\s+", "", str(value))


def check_bodies(msg: EmailMessage, html: str | None, text: str | None) -> None:
    expected = {"html": html, "plain": text}
    if html is not None and text is not None:
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    else:
        assert msg.get_content_type() == ("text/html" if html is not None else "text/plain")
    for kind, body in expected.items():
        part = msg.get_body((kind,))
        if body is None:
            assert part is None or part.get_content_subtype() != kind
            continue
        assert part is not None and part.get_content_charset() == "utf-8"
        assert decoded_body(part) == body_text(body)
        cte = part["Content-Transfer-Encoding"]
        if (
            body.isascii()
            and "\0" not in body
            and all(len(line) < 990 for line in re.split(r"\r\n|\r|\n", body))
        ):
            assert cte == "7bit"
        else:
            assert cte in ("quoted-printable", "base64")


# -- hypothesis ------------------------------------------------------------------------

_header_chars = st.one_of(
    st.sampled_from(list("abcXYZ019 \t,.;:<>@()[]\\\"'=?_-!#%&*/{|}~")),
    st.characters(min_codepoint=1, max_codepoint=0x7F, exclude_characters="\r\n"),
    st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=["Cs"]),
    st.sampled_from(["é", "ü", "ß", "—", "✓", "日", "本", "😀", "👍", "🏽", "\u0301", "\u200d"]),
)
header_text = st.one_of(
    st.text(_header_chars, max_size=40),
    st.text(_header_chars, max_size=300),
    st.builds(
        lambda word, n, sep: sep.join([word] * n),
        st.text(_header_chars, min_size=1, max_size=12),
        st.integers(1, 120),
        st.sampled_from([" ", "", "  ", "\t"]),
    ),
)
_body_chars = st.one_of(
    st.characters(min_codepoint=1, max_codepoint=0x7F),
    st.characters(exclude_categories=["Cs"]),
)
body = st.builds(
    "".join,
    st.lists(
        st.one_of(
            st.text(_body_chars, max_size=60),
            st.sampled_from(
                [
                    "\r\n",
                    "\n",
                    "\r",
                    " ",
                    "=",
                    ".",
                    "From ",
                    "--",
                    "=_",
                    "é",
                    "😀",
                    "👍🏽",
                    "\t\n",
                    " \r\n",
                ]
            ),
            st.builds(
                lambda c, n: c * n,
                st.sampled_from(["a", "é", " ", "x=", "😀", "\t"]),
                st.integers(0, 1200),
            ),
        ),
        max_size=6,
    ),
)
header_name = st.from_regex(r"[!-9;-~]{1,40}", fullmatch=True).filter(
    lambda n: n.lower() not in RESERVED_HEADERS and n.lower() not in mime.STRUCTURED
)


@st.composite
def rows(draw: st.DrawFn) -> tuple[QueuedEmail, SenderAccount]:
    html, text = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    row = replace(
        ROW,
        to_name=draw(st.one_of(st.none(), header_text)),
        subject=draw(header_text),
        html_body=draw(body) if html else None,
        text_body=draw(body) if text else None,
        headers=draw(st.dictionaries(header_name, header_text, max_size=3)) or None,
    )
    account = replace(ACCOUNT, display_name=draw(st.one_of(st.none(), header_text)))
    return row, account


@given(rows())
def test_rendered_bytes_read_back_as_meant(case: tuple[QueuedEmail, SenderAccount]):
    row, account = case
    check(row, account)


@given(header_name, header_text)
def test_any_header_value_reads_back(name: str, value: str):
    assume("=?" not in value)  # readers decode what looks like an encoded word
    data = (mime.header(name, value) + "MIME-Version: 1.0\r\n\r\nx\r\n").encode("ascii")
    check_wire_format(data)
    assert unstructured(parse(data)[name]) == unstructured(value)


@given(header_text)
def test_any_display_name_reads_back(name: str):
    assume("=?" not in name)
    data = (mime.address_header("To", name, "a@b.example") + "\r\n").encode("ascii")
    check_wire_format(data)
    assert address_reading(data, "To") == (name, "a@b.example")


# -- corpus ----------------------------------------------------------------------------

LONG_SUBJECT = "Your weekly digest: " + " ".join(f"item-{i}" for i in range(60))
CORPUS = {
    "ascii": {},
    "non-ascii names and subject": {
        "to_name": "Léa Zoë",
        "subject": "Grüße ✓",
        "headers": {"X-Campaign": "été"},
    },
    "emoji": {"subject": "Sale 😀👍🏽 now", "to_name": "😀", "html_body": "<p>😀</p>"},
    "long subject": {"subject": LONG_SUBJECT},
    "long non-ascii subject": {"subject": "Überraschung! " * 20},
    "unbreakable subject": {"subject": "x" * 500},
    "subject beyond a line": {"subject": "y" * 2000},
    "encoded-word lookalike": {"subject": "=?utf-8?q?x?= literal"},
    "quoted name": {"to_name": 'Smith, John "JJ" \\ Jr.'},
    "long name": {"to_name": "Jean-François Müller-Lüdenscheidt von und zu " * 3},
    "control characters": {"subject": "bell\x07 and tab\t", "to_name": "a\x1fb"},
    "very long lines": {"html_body": "<p>" + "word " * 1000 + "</p>", "text_body": "x" * 5000},
    "non-ascii long lines": {"html_body": "<p>" + "Grüße " * 500 + "</p>"},
    "cjk": {"html_body": "<p>" + "日本語のテキスト" * 300 + "</p>", "subject": "日本語"},
    "text only": {"html_body": None, "text_body": "Hello\nthere\r\nand\rhere"},
    "html only, no final newline": {"html_body": "<p>x</p>"},
    "both": {"text_body": "Hi\n", "html_body": "<p>Hi</p>\n"},
    "nul in body": {"text_body": "a\0b"},
    "dots and From": {"text_body": ".\nFrom me\n..\n.", "html_body": "=3D =\n"},
    "custom headers": {
        "headers": {
            "X-Num": 5,
            "X-Long": "v " * 100,
            "X-Empty": "",
            "X-Unbreakable": "u" * 1200,
            "X-Tag": "spring",
        }
    },
    "trailing and leading spaces": {"subject": "  padded  ", "to_name": " x "},
}


@pytest.mark.parametrize("fields", CORPUS.values(), ids=CORPUS.keys())
def test_corpus(fields):
    check(replace(ROW, **fields))


@pytest.mark.parametrize(
    ("reply_to", "expected"),
    [
        ("help@shop.example", ("", "help@shop.example")),
        ("Shop Help <help@shop.example>", ("Shop Help", "help@shop.example")),
        ("Jöhn Dœ <j@shop.example>", ("Jöhn Dœ", "j@shop.example")),
    ],
)
def test_structured_custom_headers_keep_their_structure(reply_to, expected):
    row = replace(ROW, headers={"Reply-To": reply_to})
    data = Renderer(max_message_bytes=10**6).render(row, ACCOUNT).data
    check_wire_format(data)
    address = parse(data)["Reply-To"].addresses[0]
    assert (address.display_name, address.addr_spec) == expected
    compare_with_old(row, ACCOUNT, data)


def test_encoded_word_lookalikes_read_as_before():
    """ASCII values are sent as they are, so a value that is already RFC 2047 encoded
    (or looks it) is decoded by readers, as it was with the old renderer."""
    row = replace(
        ROW, subject="=?utf-8?q?Caf=C3=A9?= open", headers={"X-Note": "=?utf-8?b?w6l0w6k=?="}
    )
    data = Renderer(max_message_bytes=10**6).render(row, ACCOUNT).data
    msg = parse(data)
    assert msg["Subject"] == "Café open" and msg["X-Note"] == "été"
    compare_with_old(row, ACCOUNT, data)


def test_template_rows_render_through_the_fast_path():
    row = replace(
        ROW,
        template_id=3,
        subject=None,
        html_body=None,
        variables={"n": "Zoë 😀"},
        template_subject="Order {{ n }}",
        template_html_body="<p>#{{ n }}</p>",
        template_text_body="Order {{ n }}\n" + "long line " * 200,
    )
    msg = parse(Renderer(max_message_bytes=10**6).render(row, ACCOUNT).data)
    assert msg["Subject"] == "Order Zoë 😀"
    assert msg.get_body(("html",)).get_content().strip() == "<p>#Zoë 😀</p>"
    assert decoded_body(msg.get_body(("plain",))).startswith("Order Zoë 😀\r\nlong line")


def test_tracked_message_reads_back():
    hooks = TrackingHooks(Settings(secret_key="k", base_url="https://t.example"), TokenCodec("k"))
    renderer = Renderer(
        max_message_bytes=10**6, variables=[hooks.variables], post_render=[hooks.post_render]
    )
    row = replace(
        ROW,
        text_body="Hi",
        to_name="Zoë",
        html_body='<p>Grüße <a href="https://shop.example/">x</a></p>',
    )
    data = renderer.render(row, ACCOUNT).data
    check_wire_format(data)
    msg = parse(data)
    assert not msg.defects
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(
        r"<https://t\.example/unsubscribe/[\w-]+>, <mailto:[^>]+>", str(msg["List-Unsubscribe"])
    )
    assert "/track/click/" in msg.get_body(("html",)).get_content()


def test_boundary_never_occurs_in_a_body(monkeypatch):
    tokens = iter(["0" * 32, "1" * 32])
    monkeypatch.setattr(mime.secrets, "token_hex", lambda _: next(tokens))
    row = replace(ROW, text_body="--=_" + "0" * 32 + "\n", html_body="<p>x</p>")
    msg = parse(Renderer(max_message_bytes=10**6).render(row, ACCOUNT).data)
    assert msg.get_boundary() == "=_" + "1" * 32
    check_bodies(msg, row.html_body, row.text_body)


@pytest.mark.parametrize(
    ("body", "cte"),
    [
        ("plain ascii\n", "7bit"),
        ("x" * 989, "7bit"),
        ("x" * 990, "quoted-printable"),
        ("café", "quoted-printable"),
        ("a\0b", "quoted-printable"),
        ("日本語のテキスト" * 20, "base64"),
    ],
)
def test_body_encoding_choice(body, cte):
    assert mime.body_part(body)[0] == cte


def test_hook_headers_are_validated():
    def bad_hook(draft, row, account):
        draft.add_header("X-Evil", "a\r\nBcc: victim@example.org")

    with pytest.raises(InvalidMessageError, match="CR/LF"):
        Renderer(max_message_bytes=10**6, post_render=[bad_hook]).render(ROW, ACCOUNT)

    def reserved_hook(draft, row, account):
        draft.add_header("Bcc", "victim@example.org")

    with pytest.raises(InvalidMessageError, match="set by Mailer"):
        Renderer(max_message_bytes=10**6, post_render=[reserved_hook]).render(ROW, ACCOUNT)


def test_crlf_in_message_id_is_rejected():
    row = replace(ROW, message_id="<x@y>\r\nBcc: victim@example.org")
    with pytest.raises(InvalidMessageError, match="CR/LF"):
        Renderer(max_message_bytes=10**6).render(row, ACCOUNT)


def test_an_account_address_that_is_not_one_is_refused_as_before():
    """Not the row's fault: a ValueError, not InvalidMessageError, as with the old renderer."""
    account = replace(ACCOUNT, email="news@shop.example\r\nBcc: victim@example.org")
    with pytest.raises(ValueError, match="account email contains CR/LF") as info:
        Renderer(max_message_bytes=10**6).render(ROW, account)
    assert not isinstance(info.value, InvalidMessageError)


def test_rendered_message_is_parsed_lazily():
    rendered = Renderer(max_message_bytes=10**6).render(ROW, ACCOUNT)
    assert rendered.message["Message-ID"] == ROW.message_id
    assert rendered.message is rendered.message
