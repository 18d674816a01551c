"""Link rewriting in rendered HTML, by a real HTML tokenizer (``html.parser``), not regex.

:func:`rewrite_links` replaces the ``href`` of each ``<a>`` and ``<area>`` start tag with
what a callback returns and can insert an open pixel before ``</body>``. Only those start
tags are rebuilt; every other byte of the document (comments, Outlook conditional
blocks, scripts, styles, whitespace, entities) is kept exactly as it was. The callback
receives the *decoded* URL (entities resolved, as a mail client would follow it).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urlsplit

#: Called with (link number, decoded URL); returns the replacement URL or None to keep it.
Rewrite = Callable[[int, str], str | None]

_LINK_TAGS = frozenset({"a", "area"})
_URL_JUNK = re.compile(r"[\t\n\r]")


def normalize_url(url: str) -> str:
    """``url`` as a browser would read an href: surrounding whitespace and control
    characters stripped, tabs and newlines inside removed."""
    return _URL_JUNK.sub("", url.strip(" \t\n\r\f\x00"))


def is_trackable(url: str, *, skip_prefixes: tuple[str, ...] = ()) -> bool:
    """True for absolute http(s) links that are not one of ``skip_prefixes``.

    ``mailto:``, ``tel:``, anchors (``#top``), relative and ``javascript:`` links are never
    tracked; nor are links into the tracking app itself (the unsubscribe link).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return False
    return not any(url.startswith(prefix) for prefix in skip_prefixes)


def pixel_html(url: str) -> str:
    """An invisible 1x1 image loading ``url``."""
    return (
        f'<img src="{html.escape(url, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )


def rewrite_links(document: str, rewrite: Rewrite, *, pixel: str | None = None) -> str:
    """``document`` with link targets replaced by ``rewrite`` and ``pixel`` (HTML) inserted
    before the last ``</body>``, or appended when there is none."""
    scanner = _LinkScanner(document, rewrite)
    scanner.feed(document)
    scanner.close()
    edits = scanner.edits
    if pixel is not None:
        at = scanner.body_end if scanner.body_end is not None else len(document)
        edits.append((at, at, pixel))
    out, last = [], 0
    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1])):
        out.append(document[last:start])
        out.append(text)
        last = end
    out.append(document[last:])
    return "".join(out)


class _LinkScanner(HTMLParser):
    """Collects (start, end, replacement) edits for link start tags."""

    def __init__(self, document: str, rewrite: Rewrite) -> None:
        super().__init__(convert_charrefs=True)
        self.rewrite = rewrite
        self.edits: list[tuple[int, int, str]] = []
        self.body_end: int | None = None
        self.links = 0
        self._line_starts = _line_starts(document)

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _LINK_TAGS:
            return
        raw = self.get_starttag_text() or ""
        href = next((v for k, v in attrs if k == "href"), None)
        if href is None:
            return
        self.links += 1
        replacement = self.rewrite(self.links, normalize_url(href))
        if replacement is None:
            return
        start = self._offset()
        self.edits.append((start, start + len(raw), _start_tag(raw, attrs, replacement)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def _line_starts(document: str) -> list[int]:
    """Offsets where each line starts, counting lines as ``HTMLParser.getpos`` does
    (only ``\\n`` ends a line)."""
    starts = [0]
    index = document.find("\n")
    while index != -1:
        starts.append(index + 1)
        index = document.find("\n", index + 1)
    return starts


def _start_tag(raw: str, attrs: list[tuple[str, str | None]], href: str) -> str:
    """The start tag ``raw`` rebuilt with ``href`` as its (only) href; the tag name keeps
    its spelling, other attributes keep their order and values."""
    name = re.match(r"<\s*([^\s/>]+)", raw)
    parts = [f"<{name[1] if name else 'a'}"]
    seen_href = False
    for key, value in attrs:
        if key == "href":
            if seen_href:
                continue
            seen_href, value = True, href
        parts.append(f" {key}" if value is None else f' {key}="{html.escape(value)}"')
    closing = "/>" if raw.rstrip().endswith("/>") else ">"
    return "".join(parts) + closing
