"""The chaos table adds up schedules: faults by kind, duplicates by cause, violations,
and names the seeds that failed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from chaos.checker import Report
from chaos.cli import print_table, totals
from chaos.run import RunResult
from chaos.schedule import make_schedule


def result(seed: int, violations: dict[str, list[str]], settled: bool = True) -> RunResult:
    report = Report(10, violations, Counter({"crash in flight": 1}), Counter({"paused": 2}))
    faults = Counter({"kill_worker": 2, "pg_restart": 1})
    return RunResult(make_schedule(seed, 5), report, faults, Counter(), settled, 1.0, Path("."))


def test_totals_add_up_schedules_and_name_failed_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    results = [
        result(1, {"limits": []}),
        result(2, {"limits": ["over"], "min_delay": ["close", "closer"]}),
        result(3, {}, settled=False),
    ]
    total = totals(results)
    assert total["failed_seeds"] == [2, 3]
    assert total["faults"] == {"kill_worker": 6, "pg_restart": 3}
    assert total["duplicates"] == {"crash in flight": 3}
    assert total["violations"]["limits"] == 1 and total["violations"]["min_delay"] == 2
    assert total["unsettled"] == 1 and total["deliveries"] == 30
    print_table(total, 3.0)
    table = capsys.readouterr().out
    assert "failed schedules" in table and "2 (seeds 2 3)" in table
    assert "rows waiting (account paused or full)  6" in table
