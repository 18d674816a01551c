"""The orchestrator's restart policy, as pure functions."""

from __future__ import annotations

import pytest

from mailer.worker import EXIT_CRASH, EXIT_DB_UNAVAILABLE, EXIT_LOCKED, EXIT_OK
from orchestrator.policy import (
    CLEAN_RESTART_SECONDS,
    LOCKED_RETRY_MAX_SECONDS,
    LOCKED_RETRY_MIN_SECONDS,
    STABLE_RUN_SECONDS,
    ExitKind,
    classify_exit,
    decide_after_exit,
    describe_exit,
    locked_retry_delay,
    recent_crashes,
    restart_delay,
    should_suspend,
    suspension_reason,
)


@pytest.mark.parametrize(
    ("returncode", "kind"),
    [
        (EXIT_OK, ExitKind.CLEAN),
        (EXIT_LOCKED, ExitKind.LOCKED),
        (EXIT_DB_UNAVAILABLE, ExitKind.DB_UNAVAILABLE),
        (EXIT_CRASH, ExitKind.CRASH),
        (2, ExitKind.CRASH),
        (120, ExitKind.CRASH),
        (-9, ExitKind.KILLED),
        (-15, ExitKind.KILLED),
        (-11, ExitKind.KILLED),
    ],
)
def test_classify_exit(returncode, kind):
    assert classify_exit(returncode) is kind


def test_describe_exit_names_signals():
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "exit code -9 (SIGKILL)"
    assert describe_exit(-200) == "exit code -200 (signal 200)"


def test_restart_delay_doubles_from_one_second_and_is_capped():
    assert [restart_delay(n) for n in range(9)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(10_000) == 60
    assert restart_delay(3, base=0.5, cap=1.5) == 1.5


def test_should_suspend_counts_crashes_within_the_last_hour():
    now = 10_000.0
    assert not should_suspend([], now, 3)
    assert not should_suspend([now - 10, now - 5], now, 3)
    assert should_suspend([now - 10, now - 5, now], now, 3)
    assert should_suspend([now - 3599, now - 5, now], now, 3)
    assert not should_suspend([now - 3600, now - 5, now], now, 3)
    assert not should_suspend([now - 7200, now - 5000, now], now, 3)
    assert should_suspend([now], now, 1)
    assert not should_suspend([now] * 10, now, 0), "0 disables suspension"


def test_recent_crashes_drops_old_ones_and_sorts():
    assert recent_crashes([50.0, 4000.0, 3000.0], 4000.0) == [3000.0, 4000.0]


def test_suspension_reason():
    assert suspension_reason(3, 1) == (
        "suspended: worker crashed 3 times within an hour (last exit code 1)"
    )
    assert suspension_reason(3, -9).endswith("(last exit code -9 (SIGKILL))")


def test_locked_retry_delay_stays_in_its_window():
    assert locked_retry_delay(0.0) == LOCKED_RETRY_MIN_SECONDS
    assert locked_retry_delay(0.999999) == pytest.approx(LOCKED_RETRY_MAX_SECONDS, abs=1e-3)
    assert locked_retry_delay(5.0) == LOCKED_RETRY_MAX_SECONDS
    assert 10 <= locked_retry_delay(0.5) <= 30


def decide(
    returncode,
    *,
    now=1000.0,
    ran=10.0,
    failures=0,
    crashes=(),
    max_per_hour=3,
    stopping=False,
    rand=0.5,
):
    return decide_after_exit(
        returncode,
        now=now,
        ran_seconds=ran,
        failures=failures,
        crash_times=crashes,
        max_crashes_per_hour=max_per_hour,
        rand=rand,
        stopping=stopping,
    )


def test_clean_exit_restarts_promptly_and_resets_backoff():
    d = decide(EXIT_OK, failures=4, crashes=(990.0,))
    assert d.kind is ExitKind.CLEAN
    assert d.restart_in == CLEAN_RESTART_SECONDS
    assert d.failures == 0 and d.crash_times == (990.0,)
    assert decide(EXIT_OK, stopping=True).restart_in == 0
    assert decide(EXIT_OK, ran=STABLE_RUN_SECONDS).restart_in == 0


def test_locked_exit_waits_for_the_lock_and_is_no_failure():
    d = decide(EXIT_LOCKED, failures=2, rand=0.0)
    assert d.kind is ExitKind.LOCKED and d.waits_for_lock
    assert d.restart_in == LOCKED_RETRY_MIN_SECONDS
    assert d.failures == 0 and d.crash_times == () and d.suspend_reason is None


def test_database_outage_backs_off_without_counting_toward_suspension():
    d = decide(EXIT_DB_UNAVAILABLE, failures=2, crashes=(998.0, 999.0))
    assert d.kind is ExitKind.DB_UNAVAILABLE
    assert d.restart_in == 4 and d.failures == 3
    assert d.crash_times == (998.0, 999.0) and d.suspend_reason is None


def test_crashes_back_off_exponentially_then_suspend():
    first = decide(EXIT_CRASH, now=100.0)
    assert first.kind is ExitKind.CRASH
    assert (first.restart_in, first.failures, first.crash_times) == (1, 1, (100.0,))
    second = decide(EXIT_CRASH, now=102.0, failures=first.failures, crashes=first.crash_times)
    assert (second.restart_in, second.failures, second.crash_times) == (2, 2, (100.0, 102.0))
    third = decide(EXIT_CRASH, now=105.0, failures=second.failures, crashes=second.crash_times)
    assert third.restart_in is None
    assert third.suspend_reason == (
        "suspended: worker crashed 3 times within an hour (last exit code 1)"
    )
    assert third.crash_times == () and third.failures == 0


def test_crashes_spread_over_more_than_an_hour_do_not_suspend():
    d = decide(EXIT_CRASH, now=10_000.0, failures=2, crashes=(1_000.0, 9_000.0))
    assert d.restart_in == 4 and d.suspend_reason is None
    assert d.crash_times == (9_000.0, 10_000.0)


def test_a_long_healthy_run_restarts_the_backoff():
    d = decide(EXIT_CRASH, ran=STABLE_RUN_SECONDS + 1, failures=6)
    assert d.restart_in == 1 and d.failures == 1


def test_a_worker_the_orchestrator_stops_is_never_a_crash():
    d = decide(-9, stopping=True, crashes=(998.0, 999.0))
    assert d.kind is ExitKind.CLEAN and d.restart_in == 0 and d.suspend_reason is None
    assert d.crash_times == (998.0, 999.0)


def test_a_killed_worker_backs_off_but_never_counts_toward_suspension():
    """SIGKILL from an operator or the OOM killer is not the account's fault: restart
    with capped exponential backoff, however often it happens."""
    failures, crashes, delays = 0, (998.0, 999.0), []
    for i in range(10):
        d = decide(-9, now=1000.0 + i, failures=failures, crashes=crashes, max_per_hour=1)
        assert d.kind is ExitKind.KILLED and d.suspend_reason is None
        assert d.crash_times == crashes, "a kill is not a crash"
        failures = d.failures
        delays.append(d.restart_in)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_a_stable_run_resets_the_kill_backoff():
    d = decide(-9, ran=STABLE_RUN_SECONDS, failures=7)
    assert d.restart_in == 1 and d.failures == 1
