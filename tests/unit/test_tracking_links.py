"""Link rewriting on real-world HTML: only link targets change, every other byte stays."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from mailer.tracking_links import is_trackable, normalize_url, pixel_html, rewrite_links

NEWSLETTER = """<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "x">
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-com:vml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<style type="text/css">
  a[x-apple-data-detectors] { color: inherit !important; }
  .btn a:hover { background: #000; } /* <a href="http://css.example/"> */
</style>
<!--[if mso]><xml><o:OfficeDocumentSettings><o:PixelsPerInch>96</o:PixelsPerInch>
</o:OfficeDocumentSettings></xml><![endif]-->
</head>
<BODY style="margin:0">
<table role="presentation" width="100%"><tr><td class="btn">
  <!--[if mso]><v:roundrect href="https://shop.example/mso" style="height:40px"><![endif]-->
  <A HREF="https://shop.example/sale?utm_source=news&amp;utm_medium=email#top"
     style="color:#fff;text-decoration:none" target=_blank><span><b>Shop the
     <i>sale</i></b></span></A>
  <a href='https://shop.example/caf%C3%A9?q=a+b&amp;x=1&#38;y=2'>Café</a>
  <a href=https://shop.example/unquoted?a=1&b=2>Unquoted</a>
  <a href="mailto:help@shop.example?subject=Hi">Mail us</a>
  <a href="tel:+441234567890">Call</a>
  <a href="#section-2">Jump</a>
  <a href="/relative/path">Relative</a>
  <a name="anchor-only">No href</a>
  <a href="https://track.example/unsubscribe/TOKEN">Unsubscribe</a>
  <a href="  https://shop.example/spaced  ">Spaced</a>
  <area shape="rect" coords="0,0,10,10" href="https://shop.example/map">
  <a href="javascript:alert(1)">JS</a>
  <script>document.write('<a href="https://script.example/">x</a>');</script>
  <img src="https://cdn.example/logo.png" alt="Logo"/>
</td></tr></table>
</BODY>
</html>
"""


def rewrite_all(html, *, skip=("https://track.example/",), pixel=None):
    seen = []

    def rewrite(link, url):
        if not is_trackable(url, skip_prefixes=skip):
            return None
        seen.append((link, url))
        return f"https://track.example/track/click/L{link}"

    return rewrite_links(html, rewrite, pixel=pixel), seen


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag in ("a", "area"):
            self.hrefs.append(dict(attrs).get("href"))


def hrefs(html):
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.hrefs


def test_rewrites_the_links_a_reader_can_follow_with_decoded_urls():
    out, seen = rewrite_all(NEWSLETTER)
    assert seen == [
        (1, "https://shop.example/sale?utm_source=news&utm_medium=email#top"),
        (2, "https://shop.example/caf%C3%A9?q=a+b&x=1&y=2"),
        (3, "https://shop.example/unquoted?a=1&b=2"),
        (9, "https://shop.example/spaced"),
        (10, "https://shop.example/map"),
    ]
    assert hrefs(out) == [
        "https://track.example/track/click/L1",
        "https://track.example/track/click/L2",
        "https://track.example/track/click/L3",
        "mailto:help@shop.example?subject=Hi",
        "tel:+441234567890",
        "#section-2",
        "/relative/path",
        None,
        "https://track.example/unsubscribe/TOKEN",
        "https://track.example/track/click/L9",
        "https://track.example/track/click/L10",
        "javascript:alert(1)",
    ]


def test_everything_but_the_rewritten_tags_is_kept_byte_for_byte():
    out, _ = rewrite_all(NEWSLETTER)
    # Remove the rewritten tags from both: what remains is identical.
    before, after = NEWSLETTER, out
    for original, new in [
        (
            '<A HREF="https://shop.example/sale?utm_source=news&amp;utm_medium=email#top"\n'
            '     style="color:#fff;text-decoration:none" target=_blank>',
            '<A href="https://track.example/track/click/L1" '
            'style="color:#fff;text-decoration:none" target="_blank">',
        ),
        (
            "<a href='https://shop.example/caf%C3%A9?q=a+b&amp;x=1&#38;y=2'>",
            '<a href="https://track.example/track/click/L2">',
        ),
        (
            "<a href=https://shop.example/unquoted?a=1&b=2>",
            '<a href="https://track.example/track/click/L3">',
        ),
        (
            '<a href="  https://shop.example/spaced  ">',
            '<a href="https://track.example/track/click/L9">',
        ),
        (
            '<area shape="rect" coords="0,0,10,10" href="https://shop.example/map">',
            '<area shape="rect" coords="0,0,10,10" href="https://track.example/track/click/L10">',
        ),
    ]:
        assert original in before and new in after, new
        before, after = before.replace(original, "@"), after.replace(new, "@")
    assert before == after
    assert '<v:roundrect href="https://shop.example/mso"' in out  # inside a comment
    assert '<a href="https://script.example/">' in out  # inside a script
    assert '/* <a href="http://css.example/"> */' in out  # inside a style


def test_pixel_goes_before_the_closing_body_tag_whatever_its_case():
    out, _ = rewrite_all(NEWSLETTER, pixel="<img src=PIXEL>")
    assert out.endswith("<img src=PIXEL></BODY>\n</html>\n")


def test_pixel_is_appended_to_a_fragment_without_body():
    out, _ = rewrite_all("<p>Hello <a href='https://x.example/'>x</a></p>", pixel="<img>")
    assert out == '<p>Hello <a href="https://track.example/track/click/L1">x</a></p><img>'


def test_nested_markup_entities_in_other_attributes_and_self_closing_tags():
    html = (
        '<div><a title="Tom &amp; Jerry &quot;2&quot;" href="https://x.example/?a=&lt;b&gt;" '
        "data-x download/></div>"
    )
    out, seen = rewrite_all(html)
    assert seen == [(1, "https://x.example/?a=<b>")]
    assert out == (
        '<div><a title="Tom &amp; Jerry &quot;2&quot;" '
        'href="https://track.example/track/click/L1" data-x download/></div>'
    )


def test_crlf_documents_and_multiline_tags_keep_their_positions():
    html = '<p>\r\nline</p>\r\n<a\r\n href="https://x.example/a"\r\n>a</a>\r\n<b>after</b>'
    out, _ = rewrite_all(html)
    assert out == (
        '<p>\r\nline</p>\r\n<a href="https://track.example/track/click/L1">a</a>\r\n<b>after</b>'
    )


def test_duplicate_href_keeps_only_the_first_rewritten():
    out, seen = rewrite_all('<a href="https://a.example/" HREF="https://b.example/">x</a>')
    assert seen == [(1, "https://a.example/")]
    assert out == '<a href="https://track.example/track/click/L1">x</a>'


def test_malformed_html_does_not_break_rewriting():
    html = '<p><a href="https://a.example/">unclosed <b>bold <a href="https://b.example/">'
    out, seen = rewrite_all(html)
    assert [url for _, url in seen] == ["https://a.example/", "https://b.example/"]
    assert out.count("track/click") == 2


@pytest.mark.parametrize(
    ("url", "trackable"),
    [
        ("https://x.example/", True),
        ("HTTP://X.EXAMPLE/a?b#c", True),
        ("mailto:a@b.example", False),
        ("tel:123", False),
        ("#top", False),
        ("/path", False),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("https://", False),
        ("https://track.example/unsubscribe/x", False),
        ("ftp://x.example/", False),
        ("https://[bad", False),
    ],
)
def test_trackable(url, trackable):
    assert is_trackable(url, skip_prefixes=("https://track.example/",)) is trackable


def test_normalize_url_strips_what_browsers_strip():
    assert normalize_url(" \thttps://x.example/a\n/b\r\n ") == "https://x.example/a/b"


def test_pixel_html_escapes_its_url():
    assert 'src="https://t.example/o?a=1&amp;b=&quot;"' in pixel_html('https://t.example/o?a=1&b="')


def test_a_recurring_document_is_rewritten_afresh_for_each_row():
    """Rows sharing their HTML share one scan (cached); each gets its own URLs."""
    doc = '<p><a href="https://a.example/1">one</a> <A HREF="https://a.example/2">two</A></p>'
    for row in range(3):
        out = rewrite_links(doc, lambda n, url, row=row: f"https://t.example/{row}/{n}?u={url}")
        assert out == (
            f'<p><a href="https://t.example/{row}/1?u=https://a.example/1">one</a> '
            f'<A href="https://t.example/{row}/2?u=https://a.example/2">two</A></p>'
        )
    assert rewrite_links(doc, lambda n, url: None, pixel="<img>") == doc + "<img>"
