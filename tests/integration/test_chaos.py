"""A fixed short set of chaos schedules (``python -m chaos``): every delivery guarantee
holds under kill -9s, a stopped worker, PostgreSQL restarts and an outage, two
orchestrators, misbehaving SMTP servers and admin changes mid-run.

Together the seeds draw every fault kind at least once. The harness always runs its own
embedded PostgreSQL (it stops and restarts it), whatever TEST_DATABASE_URL says.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.env import Server, embedded_postgres
from chaos.run import run_schedule
from chaos.schedule import make_schedule

#: Seeds whose 12-second schedules cover all fault kinds between them.
SEEDS = (1, 4, 5, 156)
DURATION_SECONDS = 12.0
OUTAGE_SECONDS = 3.0


@pytest.fixture(scope="module")
def chaos_server() -> Iterator[Server]:
    with embedded_postgres(max_connections=200) as server:
        yield server


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.parametrize("seed", SEEDS)
def test_a_chaos_schedule_breaks_no_invariant(
    seed: int, chaos_server: Server, tmp_path: Path
) -> None:
    schedule = make_schedule(seed, DURATION_SECONDS, OUTAGE_SECONDS)
    result = run_schedule(schedule, chaos_server, tmp_path / f"seed-{seed}", settle_seconds=90)
    problems = [
        f"{name}: {line}" for name, lines in result.report.violations.items() for line in lines
    ]
    assert result.report.deliveries > 0
    assert result.settled, "the queue did not settle:\n" + "\n".join(result.fault_log)
    assert not problems, "\n".join([f"seed {seed}", *problems[:20], *result.fault_log])
