"""Fixtures for the API tests: the app (all routes) on the test's database and a client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mailer.config import Settings
from tests.support.tracking_env import tracking_app


@pytest.fixture
def app(db_url: str, settings: Settings) -> Iterator[Flask]:
    with tracking_app(db_url, settings) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
