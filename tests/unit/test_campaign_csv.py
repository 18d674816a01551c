"""Campaign recipient CSV: header rules, variables from extra columns, line numbers and
reasons of bad lines, and reading as a stream."""

from __future__ import annotations

import pytest

from mailer.campaign_csv import CsvHeaderError, CsvProblem, Recipient, read_recipients


def _read(text: str) -> list[Recipient | CsvProblem]:
    return list(read_recipients(text.splitlines(keepends=True)))


def test_columns_become_variables_and_names_are_optional():
    got = _read("Name,EMAIL,city\nAnn,ann@example.org,Oslo\n,bob@example.org,\n")
    assert got == [
        Recipient(2, "ann@example.org", "Ann", {"city": "Oslo"}),
        Recipient(3, "bob@example.org", None, {"city": ""}),
    ]


def test_to_is_an_email_column_and_blank_lines_are_skipped():
    assert _read("to\n\n a@example.org \n") == [Recipient(3, "a@example.org", None, {})]


def test_bad_lines_are_reported_with_their_physical_line():
    got = _read('email,note\n"a@example.org","two\nlines"\nnope,x\nb@example.org\n,x\n')
    assert got[0] == Recipient(2, "a@example.org", None, {"note": "two\nlines"})
    assert [(p.line, p.reason.split(" ")[0]) for p in got[1:]] == [
        (4, "invalid"),
        (5, "has"),
        (6, "has"),
    ]


def test_header_injection_in_a_name_is_refused():
    [problem] = _read('email,name\na@example.org,"Ann\rBcc: x@y.org"\n')
    assert isinstance(problem, CsvProblem) and problem.reason.startswith("name:")


@pytest.mark.parametrize("text", ["", "name,city\n", "email,Email\n"])
def test_unusable_headers_raise(text):
    with pytest.raises(CsvHeaderError):
        _read(text)


def test_reads_lazily():
    consumed = []

    def lines():
        yield "email\n"
        for i in range(1000):
            consumed.append(i)
            yield f"u{i}@example.org\n"

    reader = read_recipients(lines())
    next(reader)
    assert len(consumed) == 1
