"""Link rewriting in rendered HTML, by a tokenizer that follows ``html.parser``'s rules.

:func:`rewrite_links` replaces the ``href`` of each ``<a>`` and ``<area>`` start tag with
what a callback returns and can insert an open pixel before ``</body>``. Only those start
tags are rebuilt; every other byte of the document (comments, Outlook conditional
blocks, scripts, styles, whitespace, entities) is kept exactly as it was. The callback
receives the *decoded* URL (entities resolved, as a mail client would follow it).

The tokenizer makes the decisions Python 3.11's ``html.parser.HTMLParser`` makes (same
regular expressions for tags and attributes, comments, declarations, marked sections,
``<script>``/``<style>`` raw text, and what an unterminated construct becomes) but only
looks at markup: text is skipped, and only link, ``script``/``style`` and ``body`` tags
are examined, which makes it an order of magnitude cheaper. Where ``html.parser`` raises
(a marked section ``<![name[`` it does not know), the section is a bogus comment, as
later Pythons treat it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import lru_cache
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
    links, body_end = _scanned(document)
    edits = []
    for number, (start, end, attrs, url) in enumerate(links, 1):
        replacement = rewrite(number, url)
        if replacement is not None:
            edits.append((start, end, _rebuilt_tag(document[start:end], list(attrs), replacement)))
    if pixel is not None:
        at = body_end if body_end is not None else len(document)
        edits.append((at, at, pixel))
    if not edits:
        return document
    out, last = [], 0
    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1])):
        out.append(document[last:start])
        out.append(text)
        last = end
    out.append(document[last:])
    return "".join(out)


#: A scanned link: the start tag's span, its attributes and its normalized href.
_Link = tuple[int, int, tuple[tuple[str, str | None], ...], str]


#: Documents up to this size are scanned once while they recur (worker memory stays small).
_CACHED_DOCUMENT_CHARS = 200_000


def _scanned(document: str) -> tuple[tuple[_Link, ...], int | None]:
    """The links of ``document`` in order, and where its last ``</body>`` starts: scanned
    once per distinct (small) document, since a campaign's rows usually share their HTML
    and only the rewritten URLs differ per row."""
    if len(document) <= _CACHED_DOCUMENT_CHARS:
        return _scanned_cached(document)
    return _scan(document)


@lru_cache(maxsize=32)
def _scanned_cached(document: str) -> tuple[tuple[_Link, ...], int | None]:
    return _scan(document)


def _scan(document: str) -> tuple[tuple[_Link, ...], int | None]:
    scan = _Scan(document)
    scan.run()
    return tuple(scan.links), scan.body_end


# html.parser's (Python 3.11) expressions, verbatim: they decide where a tag ends.
_START_TAG_END = re.compile(
    r"""
  <[a-zA-Z][^\t\n\r\f />\x00]*       # tag name
  (?:[\s/]*                          # optional whitespace before attribute name
    (?:(?<=['"\s/])[^\s/>][^\s/=>]*  # attribute name
      (?:\s*=+\s*                    # value indicator
        (?:'[^']*'                   # LITA-enclosed value
          |"[^"]*"                   # LIT-enclosed value
          |(?!['"])[^>\s]*           # bare value
         )
        \s*                          # possibly followed by a space
       )?(?:\s|/(?!>))*
     )*
   )?
  \s*                                # trailing whitespace
""",
    re.VERBOSE,
)
_TAG_NAME = re.compile(r"([a-zA-Z][^\t\n\r\f />\x00]*)(?:\s|/(?!>))*")
_ATTRIBUTE = re.compile(
    r'((?<=[\'"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*'
    r'(\'[^\']*\'|"[^"]*"|(?![\'"])[^>\s]*))?(?:\s|/(?!>))*'
)
_END_TAG = re.compile(r"</\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>")
_COMMENT_END = re.compile(r"--\s*>")
_DECLARATION_NAME = re.compile(r"[a-zA-Z][-_.a-zA-Z0-9]*\s*")
_MARKED_SECTION_END = re.compile(r"]\s*]\s*>")
_MS_MARKED_SECTION_END = re.compile(r"]\s*>")
#: What needs no closer look, skipped in one match: text, a "<" that starts no markup
#: (html.parser's markup is "<" then a letter, "/", "!" or "?"), start tags other than
#: a/area/script/style whose attributes are all plain (ASCII whitespace, simple names,
#: quoted values: html.parser ends them at the same ">"), end tags other than </body>.
#: ASCII-only matching: under Unicode IGNORECASE, [a-z] would also take U+017F and U+212A.
_SKIP = re.compile(
    r"""
    (?: [^<]+
      | <(?![a-zA-Z/!?])
      | <(?!(?:a|area|script|style)[\s/>])[a-zA-Z][a-zA-Z0-9]*
        (?:[ \t\n\r\f]+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:="[^"]*"|='[^']*')?)*[ \t\n\r\f]*>
      | </(?!body[\s>])[a-zA-Z][a-zA-Z0-9]*[ \t\n\r\f]*>
    )*""",
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)
#: The next character after a start tag that makes html.parser wait for more input.
_INCOMPLETE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ=/")
_RAW_TEXT_END = {
    name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE) for name in ("script", "style")
}
_EXAMINED_TAGS = _LINK_TAGS | _RAW_TEXT_END.keys()


class _Scan:
    """One pass over a document: its ``links`` (start tags with an href, in order) and
    ``body_end``, the offset of the last ``</body>`` end tag."""

    def __init__(self, document: str) -> None:
        self.doc = document
        self.links: list[_Link] = []
        self.body_end: int | None = None

    def run(self) -> None:
        doc = self.doc
        i = 0
        while True:
            skipped = _SKIP.match(doc, i)  # (?:...)* always matches, maybe nothing
            i = skipped.end() if skipped is not None else i
            if i >= len(doc):
                return
            kind = doc[i + 1]
            if kind == "/":
                end = self._end_tag(i)
            elif kind == "!":
                end = self._declaration(i)
            elif kind == "?":
                end = _after(doc, ">", i + 2)
            else:
                end = self._start_tag(i)
            if end is None:  # raw text ran to the end of the document
                return
            if end < 0:
                # Unterminated: html.parser's close() makes it text up to the next ">";
                # without one, nothing later can be a tag either.
                end = _after(doc, ">", i + 1)
                if end < 0:
                    return
            i = end

    def _start_tag(self, i: int) -> int | None:
        doc = self.doc
        end = self._start_tag_end(i)
        if end < 0:
            return end
        name_match = _TAG_NAME.match(doc, i + 1)
        assert name_match is not None  # _MARKUP saw a letter
        tag = name_match[1].lower()
        if tag not in _EXAMINED_TAGS:
            return end
        attrs, closing = _attributes(doc, name_match.end(), end)
        if closing not in (">", "/>"):
            return end  # html.parser's text, not a tag
        if tag in _LINK_TAGS:
            self._link(i, end, attrs)
        elif closing == ">":  # <script> or <style>: raw text up to its end tag
            return self._raw_text_end(tag, end)
        return end

    def _raw_text_end(self, tag: str, start: int) -> int | None:
        """Where the raw text of ``tag`` from ``start`` ends, after its end tag; None if
        it runs to the end of the document. Like html.parser, a candidate found by the
        (Unicode case-insensitive) search ends it only if it is that end tag in ASCII."""
        doc = self.doc
        while (candidate := _RAW_TEXT_END[tag].search(doc, start)) is not None:
            end_tag = _END_TAG.match(doc, candidate.start())
            if end_tag is not None and end_tag[1].lower() == tag:
                return candidate.end()
            start = candidate.end()
        return None

    def _start_tag_end(self, i: int) -> int:
        """html.parser's ``check_for_whole_start_tag``: where the tag ends, -1 if it is
        unterminated."""
        doc = self.doc
        match = _START_TAG_END.match(doc, i)
        assert match is not None
        j = match.end()
        next_char = doc[j : j + 1]
        if next_char == ">":
            return j + 1
        if next_char == "/":
            return j + 2 if doc.startswith("/>", j) else -1
        if next_char == "" or next_char in _INCOMPLETE:
            return -1
        return j if j > i else i + 1

    def _link(self, start: int, end: int, attrs: list[tuple[str, str | None]]) -> None:
        href = next((value for key, value in attrs if key == "href"), None)
        if href is None:
            return
        self.links.append((start, end, tuple(attrs), normalize_url(href)))

    def _end_tag(self, i: int) -> int:
        doc = self.doc
        gt = doc.find(">", i + 1)
        if gt < 0:
            return -1
        match = _END_TAG.match(doc, i)
        if match is not None:
            name = match[1].lower()
        else:
            name_match = _TAG_NAME.match(doc, i + 2)
            if name_match is None:
                return i + 3 if doc.startswith("</>", i) else _after(doc, ">", i + 2)
            name = name_match[1].lower()
        if name == "body":
            self.body_end = i
        return gt + 1

    def _declaration(self, i: int) -> int:
        """``<!--`` comments, ``<![`` marked sections, ``<!doctype``, bogus comments."""
        doc = self.doc
        if doc.startswith("<!--", i):
            match = _COMMENT_END.search(doc, i + 4)
            return match.end() if match is not None else -1
        if doc.startswith("<![", i):
            return self._marked_section(i)
        if doc[i : i + 9].lower() == "<!doctype":
            return _after(doc, ">", i + 9)
        return _after(doc, ">", i + 2)

    def _marked_section(self, i: int) -> int:
        doc = self.doc
        if i + 3 == len(doc):
            return -1
        name_match = _DECLARATION_NAME.match(doc, i + 3)
        if name_match is None:
            return _after(doc, ">", i + 2)
        if name_match.end() == len(doc):
            return -1
        name = name_match[0].strip().lower()
        if name in ("temp", "cdata", "ignore", "include", "rcdata"):
            match = _MARKED_SECTION_END.search(doc, i + 3)
        elif name in ("if", "else", "endif"):
            match = _MS_MARKED_SECTION_END.search(doc, i + 3)
        else:
            return _after(doc, ">", i + 2)
        return match.end() if match is not None else -1


def _after(doc: str, char: str, start: int) -> int:
    """The offset just after the first ``char`` from ``start``, -1 if there is none."""
    found = doc.find(char, start)
    return found + 1 if found >= 0 else -1


def _attributes(doc: str, k: int, end: int) -> tuple[list[tuple[str, str | None]], str]:
    """html.parser's attributes of the start tag ending at ``end`` (names lowercased,
    values unquoted and unescaped; None for a bare name), from ``k`` after its name, and
    what is left before ``end`` (``>`` or ``/>`` for a well-formed tag)."""
    attrs: list[tuple[str, str | None]] = []
    while k < end:
        match = _ATTRIBUTE.match(doc, k)
        if not match:
            break
        name, rest, value = match.group(1, 2, 3)
        if not rest:
            value = None
        elif value[:1] == "'" == value[-1:] or value[:1] == '"' == value[-1:]:
            value = value[1:-1]
        if value:
            value = html.unescape(value)
        attrs.append((name.lower(), value))
        k = match.end()
    return attrs, doc[k:end].strip()


def _rebuilt_tag(raw: str, attrs: list[tuple[str, str | None]], href: str) -> str:
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
