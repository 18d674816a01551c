"""MAILER_HOME: one documented default, resolved once to an absolute path."""

from __future__ import annotations

from pathlib import Path

from mailer.config import default_home, load_settings


def test_the_default_home_does_not_depend_on_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_home({"XDG_DATA_HOME": "/data"}) == Path("/data/mailer")
    assert default_home({}) == Path.home() / ".local" / "share" / "mailer"
    assert load_settings({"XDG_DATA_HOME": "/data"}).home == Path("/data/mailer")


def test_a_relative_home_is_resolved_once_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"MAILER_HOME": "state"})
    assert settings.home == tmp_path / "state" and settings.home.is_absolute()
    assert load_settings({"MAILER_HOME": "~/m"}).home == Path.home() / "m"
