"""The WSGI entry point for production servers: ``gunicorn tracking.wsgi:app``.

Configuration comes from the environment (``DATABASE_URL``, ``MAILER_SECRET_KEY``,
``MAILER_BASE_URL``, ``MAILER_SES_TOPIC_ARNS``, ...; see :mod:`mailer.config`).
"""

from __future__ import annotations

from tracking import create_app

app = create_app()
