"""The account settings rules checked before any write."""

from __future__ import annotations

import pytest

from mailer.account_validation import InvalidAccount, account_problems, check_account


def test_good_settings_have_no_problem():
    assert account_problems({}) == []
    assert (
        account_problems(
            {
                "email": "news@shop.example",
                "daily_limit": 0,
                "hourly_limit": None,
                "min_delay_ms": 1500,
                "smtp_port": 587,
                "imap_port": 993,
                "ehlo_hostname": "[192.0.2.1]",
                "pool": "marketing",
            }
        )
        == []
    )


def test_every_problem_is_named_with_its_option():
    problems = account_problems(
        {
            "email": "no-at-sign",
            "daily_limit": -1,
            "min_delay_ms": -5,
            "smtp_port": 0,
            "imap_port": 70000,
            "ehlo_hostname": "two words",
            "pool": " ",
        }
    )
    assert problems[0].startswith("invalid --email 'no-at-sign'")
    assert problems[1:] == [
        "--daily-limit must be 0 or more, not -1",
        "--min-delay-ms must be 0 or more, not -5",
        "--smtp-port must be a port from 1 to 65535, not 0",
        "--imap-port must be a port from 1 to 65535, not 70000",
        "--ehlo-hostname 'two words' is not a host name or [address literal]",
        "--pool must not be empty",
    ]
    with pytest.raises(InvalidAccount, match="0 or more, not -1; --hourly-limit"):
        check_account({"daily_limit": -1, "hourly_limit": -1})
