"""Numbered schema migrations (``NNNN_name.sql``), applied in order by ``mailer db migrate``."""
