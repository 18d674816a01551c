"""Mailer: self-hosted email delivery on one PostgreSQL.

Other systems INSERT into ``email_queue``; one worker process per sender account claims
rows with ``FOR UPDATE SKIP LOCKED`` and sends them without ever exceeding the account's
limits. See DESIGN.md for the public contract.
"""

__version__ = "0.1.0"
