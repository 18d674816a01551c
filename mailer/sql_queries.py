"""Named SQL blocks, parsed once from ``sql/queries.sql`` (shipped as ``mailer.sql``).

A block starts with a line ``-- name --``; the comment lines right after it are its
documentation and the statement runs until the next block. Code refers to queries only by
name, so every statement Mailer runs can be read in one file.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_BLOCK_HEADER = re.compile(r"^-- ([a-z0-9_]+) --$", re.MULTILINE)


def parse_query_blocks(text: str) -> dict[str, str]:
    """Split ``text`` into ``{name: statement}``; a name given twice is an error."""
    parts = _BLOCK_HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query block {name!r} is defined twice")
        # Indentation goes too: psycopg caches its parsing of a statement only up to 4096
        # characters (the claim and the outcome writes are long).
        statement = "\n".join(
            line.strip() for line in body.strip().splitlines() if not line.lstrip().startswith("--")
        ).strip()
        queries[name] = statement
    return queries


@cache
def queries() -> dict[str, str]:
    """All named queries of ``queries.sql``."""
    text = resources.files("mailer.sql").joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_query_blocks(text)


def query(name: str) -> str:
    """The statement named ``name``; KeyError names the missing block."""
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no query block -- {name} -- in sql/queries.sql") from None


def migration_scripts() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every migration, in version order."""
    scripts = []
    folder = resources.files("mailer.sql.migrations")
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", entry.name)
        if match:
            scripts.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(scripts)
