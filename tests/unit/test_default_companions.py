"""What ``mailer run`` keeps running beside the workers, and how settings leave it out."""

from __future__ import annotations

from mailer.config import Settings, load_settings
from orchestrator.supervisor import default_companions


def test_companions_run_by_default() -> None:
    companions = dict(default_companions(Settings()))
    assert list(companions) == ["bounce reader", "webhook sender", "recurring scheduler"]
    assert companions["webhook sender"][-3:] == ["mailer", "webhooks", "run"]
    assert companions["recurring scheduler"][-3:] == ["mailer", "recurring", "run"]


def test_each_companion_can_be_left_out() -> None:
    settings = load_settings({"MAILER_WEBHOOK_SENDER": "0", "MAILER_RECURRING_SCHEDULER": "0"})
    assert [name for name, _ in default_companions(settings)] == ["bounce reader"]
    settings = load_settings({"MAILER_BOUNCE_READER": "0", "MAILER_WEBHOOKS_ALLOW_PRIVATE": "1"})
    assert [name for name, _ in default_companions(settings)] == [
        "webhook sender",
        "recurring scheduler",
    ]
    assert settings.webhooks_allow_private and not Settings().webhooks_allow_private
