"""The tracking web app (Flask): opens, clicks, unsubscribes, webhooks. Built in its own
issue; for now it serves health and readiness."""

from __future__ import annotations

from typing import Any

from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The Flask application; ``test_config`` overrides configuration."""
    app = Flask(__name__)
    app.config.update(test_config or {})

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok\n", 200

    return app
