"""``python -m chaos [--seed N] [--schedules N] [--duration S] [--json FILE]``: Mailer's
chaos harness.

Runs randomized fault schedules (kill -9 of workers and orchestrators, SIGSTOP beyond
the lease, PostgreSQL restarts and outages, two orchestrators, misbehaving SMTP servers,
admins lowering limits, pausing accounts and suppressing addresses) against a throw-away
embedded PostgreSQL, loopback SMTP servers and ``python -m mailer run``, then checks
every delivery guarantee over the whole history.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.env import embedded_postgres, worker_pool
from chaos.checker import INVARIANTS
from chaos.run import RunResult, run_schedule, summary
from chaos.schedule import FAULT_KINDS, make_schedule


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the first schedule")
    parser.add_argument(
        "--seeds", type=int, nargs="+", metavar="N", help="run exactly these seeds instead"
    )
    parser.add_argument("--schedules", type=int, default=50, help="how many schedules")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of faults per schedule"
    )
    parser.add_argument(
        "--outage-seconds", type=float, default=8.0, help="length of a PostgreSQL outage"
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=120.0, help="longest wait for the queue to settle"
    )
    parser.add_argument(
        "--pgbouncer",
        type=int,
        metavar="POOL_SIZE",
        help="workers query through a private PgBouncer (Debian's pgbouncer) in transaction "
        "mode with this default_pool_size (MAILER_WORKER_DATABASE_URL)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep logs and SMTP records under DIR"
    )
    return parser.parse_args(argv)


def run_all(args: argparse.Namespace) -> list[RunResult]:
    seeds = args.seeds or list(range(args.seed, args.seed + args.schedules))
    workroot = args.keep or Path(tempfile.mkdtemp(prefix="mailer-chaos-"))
    results = []
    try:
        with (
            embedded_postgres(max_connections=200) as server,
            worker_pool(server, args.pgbouncer) as worker_url,
        ):
            for seed in seeds:
                schedule = make_schedule(seed, args.duration, args.outage_seconds)
                result = run_schedule(
                    schedule, server, workroot / f"seed-{seed}", args.settle_seconds, worker_url
                )
                print_result(result)
                results.append(result)
    finally:
        if args.keep is None:
            shutil.rmtree(workroot, ignore_errors=True)
    return results


def print_result(result: RunResult) -> None:
    """One line per schedule; a failing one adds its violations and fault timeline."""
    seed = result.schedule.seed
    verdict = "ok" if result.ok else "FAIL " + ", ".join(result.report.failed_invariants())
    if not result.settled:
        verdict += " (did not settle)"
    print(f"seed {seed}: {result.report.deliveries} deliveries, {result.seconds:.0f} s, {verdict}")
    if result.ok:
        return
    for name, problems in result.report.violations.items():
        for line in problems[:5]:
            print(f"  {name}: {line}")
        if len(problems) > 5:
            print(f"  {name}: ... {len(problems) - 5} more")
    print(f"  replay: {result.schedule.replay()}; fault timeline:")
    for line in result.fault_log:
        print(f"    {line}")
    sys.stdout.flush()


def totals(results: list[RunResult]) -> dict[str, Any]:
    """The table's figures over every schedule."""
    faults: Counter[str] = Counter()
    duplicates: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    waiting: Counter[str] = Counter()
    for r in results:
        faults.update(r.injected)
        duplicates.update(r.report.duplicates)
        waiting.update(r.report.waiting)
        violations.update({k: len(v) for k, v in r.report.violations.items()})
    return {
        "schedules": len(results),
        "failed_seeds": [r.schedule.seed for r in results if not r.ok],
        "faults": {k: faults[k] for k in FAULT_KINDS if faults[k]},
        "deliveries": sum(r.report.deliveries for r in results),
        "duplicates": dict(duplicates),
        "violations": {k: violations[k] for k in INVARIANTS},
        "waiting": dict(waiting),
        "unsettled": sum(1 for r in results if not r.settled),
    }


def print_table(total: dict[str, Any], seconds: float) -> None:
    v = total["violations"]
    rows = [
        ("schedules", total["schedules"]),
        ("failed schedules", _seeds(total["failed_seeds"])),
        ("faults injected", sum(total["faults"].values())),
        *((f"  {k}", n) for k, n in total["faults"].items()),
        ("deliveries", total["deliveries"]),
        ("duplicates", sum(total["duplicates"].values()) or 0),
        *((f"  {k}", n) for k, n in sorted(total["duplicates"].items())),
        ("limit overshoots", v["limits"]),
        ("min_delay violations", v["min_delay"]),
        ("deliveries after suppression", v["suppression"]),
        ("rows lost (not terminal)", v["terminal"]),
        ("rows waiting (account paused or full)", sum(total["waiting"].values())),
        ("sink/database disagreements", v["agreement"]),
        ("unexplained duplicates", v["at_most_once"]),
        ("schedules that did not settle", total["unsettled"]),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nMailer chaos: {total['schedules']} schedules in {seconds:.0f} s")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


def _seeds(seeds: list[int]) -> str:
    return "0" if not seeds else f"{len(seeds)} (seeds {' '.join(map(str, seeds))})"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    results = run_all(args)
    total = totals(results)
    print_table(total, time.monotonic() - started)
    if args.json:
        document = {"totals": total, "schedules": [summary(r) for r in results]}
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    sys.exit(0 if not total["failed_seeds"] else 1)
