"""``mailer api-keys create|list|revoke`` and ``--routes`` / ``MAILER_WEB_ROUTES``."""

from __future__ import annotations

import json

import pytest

from tests.support.tracking_env import tracking_app


def test_api_keys_create_list_revoke(mailer, sql):
    out = mailer("api-keys", "create", "--name", "shop", "--scope", "send", "--pool", "tx")
    secret = out.strip().splitlines()[0]
    assert secret.startswith("mk_")
    row = sql.execute("SELECT * FROM api_keys").fetchone()
    assert (row["scope"], row["pools"]) == ("send", ["tx"]) and secret not in str(row)
    listed = json.loads(mailer("api-keys", "list", "--json"))
    assert listed[0]["prefix"] == row["prefix"] and "secret" not in json.dumps(listed)
    assert secret not in mailer("api-keys", "list")
    assert "revoked" in mailer("api-keys", "revoke", row["prefix"])
    mailer("api-keys", "revoke", row["prefix"], code=1)
    mailer("api-keys", "create", "--name", "x", "--scope", "root", code=2)


@pytest.mark.parametrize(
    ("routes", "api", "tracking"),
    [("api", True, False), ("tracking", False, True), ("all", True, True), ("admin", False, False)],
)
def test_routes_choose_what_one_process_serves(db_url, settings, routes, api, tracking):
    with tracking_app(db_url, settings, WEB_ROUTES=routes) as app:
        rules = {r.rule for r in app.url_map.iter_rules()}
    assert ("/api/v1/emails" in rules) is api
    assert ("/unsubscribe/<token>" in rules) is tracking
    assert "/healthz" in rules


def test_routes_from_the_environment(db_url, settings):
    with tracking_app(db_url, settings.with_overrides(web_routes="api")) as app:
        rules = {r.rule for r in app.url_map.iter_rules()}
    assert "/api/v1/emails" in rules and "/track/open/<token>" not in rules
    wrong = settings.with_overrides(web_routes="everything")
    with pytest.raises(ValueError, match="MAILER_WEB_ROUTES"), tracking_app(db_url, wrong):
        pass
