"""Campaign recipients from CSV, read line by line (never the whole document): a header
row naming an ``email`` (or ``to``) column, an optional ``name`` column, and any other
columns, which become each recipient's template variables (strings).

:func:`read_recipients` yields a :class:`Recipient` per good line and a
:class:`CsvProblem` per bad one (the worker's own address check, so a bad address is
refused at the door rather than failing on its row later); blank lines are skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mailer.email_requests import address_problem, name_problem

EMAIL_COLUMNS = ("email", "to")
NAME_COLUMN = "name"


class CsvHeaderError(ValueError):
    """The header row is missing or unusable: nothing can be read."""


@dataclass(frozen=True)
class Recipient:
    line: int
    email: str
    name: str | None
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CsvProblem:
    line: int
    reason: str


@dataclass(frozen=True)
class Columns:
    """Where the email and name are, and the variable name of every other column."""

    email: int
    name: int | None
    variables: tuple[tuple[int, str], ...]
    count: int


def parse_header(header: list[str]) -> Columns:
    names = [h.strip() for h in header]
    lowered = [n.lower() for n in names]
    if any("\0" in n for n in names):
        raise CsvHeaderError("the header row contains a NUL character")
    if len(set(lowered)) != len(lowered):
        raise CsvHeaderError("the header row names a column twice")
    email = next((lowered.index(c) for c in EMAIL_COLUMNS if c in lowered), None)
    if email is None:
        raise CsvHeaderError("the header row must name an 'email' column")
    name = lowered.index(NAME_COLUMN) if NAME_COLUMN in lowered else None
    variables = tuple((i, n) for i, n in enumerate(names) if i not in (email, name) and n)
    return Columns(email, name, variables, len(names))


def read_recipients(
    lines: Iterable[str], *, reject_special_use: bool = False
) -> Iterator[Recipient | CsvProblem]:
    """Every data line of a CSV stream as a recipient or a problem (CsvHeaderError when
    the header row is missing or names no email column)."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CsvHeaderError(f"the header row is not CSV: {exc}") from None
    if header is None:
        raise CsvHeaderError("the CSV is empty: a header row with an 'email' column is needed")
    columns = parse_header(header)
    while True:
        line = reader.line_num + 1  # where the record starts (a quoted field may span lines)
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield CsvProblem(line, f"not CSV: {exc}")
            continue
        if any(f.strip() for f in fields):
            yield recipient(fields, line, columns, reject_special_use)


def recipient(
    fields: list[str], line: int, columns: Columns, reject_special_use: bool
) -> Recipient | CsvProblem:
    """One data line as a recipient, or why not."""
    if len(fields) != columns.count:
        return CsvProblem(line, f"has {len(fields)} fields where the header has {columns.count}")
    if any("\0" in f for f in fields):
        return CsvProblem(line, "contains a NUL character")
    email = fields[columns.email].strip()
    problem = address_problem(email, reject_special_use=reject_special_use) if email else None
    if not email or problem:
        return CsvProblem(line, problem or "has no email address")
    name = fields[columns.name].strip() if columns.name is not None else ""
    if name and (problem := name_problem(name)):
        return CsvProblem(line, f"name: {problem}")
    variables = {key: fields[i] for i, key in columns.variables}
    return Recipient(line, email, name or None, variables)
