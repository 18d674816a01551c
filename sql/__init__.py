"""Mailer's SQL, shipped as package data (installed as ``mailer.sql``).

``migrations/`` holds the numbered schema migrations; ``queries.sql`` holds every other
statement as named blocks, parsed once by :mod:`mailer.sql_queries`.
"""
