"""Fixtures for the console tests: the app (all routes) on the test's database, an admin
user, and a client logged in as that user."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from mailer.admin_users import AdminUsers
from mailer.config import Settings
from tests.support.tracking_env import tracking_app

ADMIN = "ops@example.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def app(db_url: str, settings: Settings) -> Iterator[Flask]:
    with tracking_app(db_url, settings) as app:
        yield app


@pytest.fixture
def admin_user(sql: psycopg.Connection) -> str:
    AdminUsers(sql).create(ADMIN, PASSWORD)
    return ADMIN


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match[1]


def log_in(client: FlaskClient, email: str = ADMIN, password: str = PASSWORD, **kw: str):
    page = client.get("/admin/login")
    token = csrf_of(page.get_data(as_text=True))
    form = {"email": email, "password": password, "csrf_token": token}
    return client.post("/admin/login", data=form, **kw)


@pytest.fixture
def client(app: Flask, admin_user: str) -> FlaskClient:
    """A client logged in as the admin user."""
    client = app.test_client()
    assert log_in(client).status_code == 303
    return client


def token(client: FlaskClient, path: str = "/admin/") -> str:
    """The session's CSRF token, read from a page as a browser would."""
    return csrf_of(client.get(path).get_data(as_text=True))
