"""``python -m bench [--quick] [--only NAME ...] [--json FILE]``: Mailer's benchmark.

Every figure is measured in one run, next to its own baseline on the same machine: the
SMTP ceiling of plain aiosmtplib clients, a bare table, a 1,000-row queue. It uses a real
PostgreSQL (a temporary embedded one unless ``DATABASE_URL`` is set; the database
``mailer_bench`` is created and dropped) and a real SMTP sink in its own process
(``python -m mailer sink --discard``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.env import (
    BENCH_DATABASE,
    Sink,
    drop_database,
    machine_facts,
    postgres_server,
    worker_pool,
)
from bench.figures import FIGURES as BASE_FIGURES
from bench.scale import fig_scale
from bench.takeover import fig_takeover

FIGURES = {**BASE_FIGURES, "scale": fig_scale, "takeover": fig_takeover}

FULL = {
    "accounts": 4,
    "messages": 20_000,
    "enqueue_rows": 50_000,
    "reps": 3,
    "latency_samples": 200,
    "idle_accounts": 200,
    "idle_seconds": 60.0,
    "deep_rows": 10_000_000,  # issue 12: the claim stays flat at 10,000,000 rows
    "deep_queued": 100_000,
    "claim_samples": 60,
    "memory_messages": 20_000,
    "webhook_deliveries": 5_000,
    "console_accounts": 1_000,
    "console_rows": 1_000_000,
    "api_requests": 5_000,
    "api_batches": 40,
    "api_clients": 8,
    "api_batch_clients": 2,
    "scale_accounts": 1_000,
    "scale_baseline_accounts": 100,
    "takeover_accounts": 20,
}
QUICK = {
    "accounts": 4,
    "messages": 4_000,
    "enqueue_rows": 10_000,
    "reps": 3,
    "latency_samples": 40,
    "idle_accounts": 20,
    "idle_seconds": 15.0,
    "deep_rows": 100_000,
    "deep_queued": 10_000,
    "claim_samples": 30,
    "memory_messages": 3_000,
    "webhook_deliveries": 1_000,
    "console_accounts": 200,
    "console_rows": 100_000,
    "api_requests": 1_000,
    "api_batches": 10,
    "api_clients": 8,
    "api_batch_clients": 2,
    "scale_accounts": 50,
    "scale_baseline_accounts": 20,
    "takeover_accounts": 10,
}
ALIASES = {"retention": "deep", "claim-depth": "deep"}
#: ``--only scale`` is issue 12's whole table: the idle fleet, the take-over after a host
#: dies and the throughput ratio (``--only scale-fleet`` runs the fleet alone).
GROUPS = {"scale": ["scale", "takeover", "throughput"], "scale-fleet": ["scale"]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: the whole run takes about a minute and a half",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        choices=[*FIGURES, *ALIASES, *GROUPS],
        help="run only this figure (repeatable): "
        + ", ".join(FIGURES)
        + " (deep, alias claim-depth, includes retention; scale also runs takeover and"
        " throughput, scale-fleet the idle fleet alone)",
    )
    parser.add_argument(
        "--pgbouncer",
        type=int,
        metavar="POOL_SIZE",
        help="the workers of every `mailer run` query through a private PgBouncer "
        "(Debian's pgbouncer) in transaction mode with this default_pool_size",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write figures as JSON")
    parser.add_argument(
        "--no-retention", action="store_true", help="skip the prune run after the deep-queue figure"
    )
    for key, value in FULL.items():
        parser.add_argument(
            "--" + key.replace("_", "-"),
            type=type(value),
            default=None,
            help=f"full run: {value}; --quick: {QUICK[key]}",
        )
    return parser.parse_args(argv)


def print_table(facts: dict[str, Any], results: dict[str, Any], elapsed: float) -> None:
    rows = [["figure", "metric", "value", "goal", ""]]
    for name, res in results.items():
        if "error" in res:
            rows.append([name, "ERROR", res["error"].splitlines()[-1][:80], "", "MISS"])
            continue
        for i, (metric, value, goal, ok) in enumerate(res["table"]):
            rows.append([name if i == 0 else "", metric, value, goal, ok])
    widths = [max(len(str(r[c])) for r in rows) for c in range(5)]
    print()
    print(
        f"Mailer benchmark — {facts['cpu']}, {facts['cores']} cores, "
        f"{facts['memory_gib']} GiB, {facts['os']}, Python {facts['python']}, "
        f"{facts['postgres']} ({'embedded' if facts['postgres_embedded'] else 'DATABASE_URL'}"
        f", max_connections {facts['max_connections']}"
        + (
            f"; workers through PgBouncer, pool {facts['pgbouncer_pool_size']}"
            if "pgbouncer_pool_size" in facts
            else ""
        )
        + f"); {elapsed:.0f} s"
    )
    for i, row in enumerate(rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    names = [m for n in args.only for m in GROUPS.get(n, [ALIASES.get(n, n)])] or list(FIGURES)
    started = time.monotonic()
    results: dict[str, Any] = {}
    with postgres_server() as server, worker_pool(server, args.pgbouncer) as worker_url:
        facts = machine_facts(server)
        if worker_url is not None:  # every MailerRun's environment starts from ours
            os.environ["MAILER_WORKER_DATABASE_URL"] = worker_url(BENCH_DATABASE)
            facts["pgbouncer_pool_size"] = args.pgbouncer
        print(f"benchmark on {facts['postgres']}, figures: {', '.join(names)}", flush=True)
        try:
            with Sink() as sink:
                for name in FIGURES:
                    if name not in names:
                        continue
                    print(f"  {name} …", flush=True)
                    t0 = time.monotonic()
                    try:
                        results[name] = FIGURES[name](
                            server, sink, **sizes, retention=not args.no_retention
                        )
                    except Exception:
                        results[name] = {"error": traceback.format_exc()}
                        print(results[name]["error"], file=sys.stderr)
                    results[name]["elapsed_s"] = time.monotonic() - t0
                    print(f"  {name} done in {results[name]['elapsed_s']:.0f} s", flush=True)
                sink_count = sink.stop()
        finally:
            drop_database(server)
    elapsed = time.monotonic() - started
    print_table(facts, results, elapsed)
    if args.json:
        data = {
            "machine": facts,
            "sizes": sizes,
            "quick": args.quick,
            "elapsed_s": elapsed,
            "sink_messages": sink_count,
            "figures": results,
        }
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"\nwritten to {args.json}")
    if any("error" in r for r in results.values()):
        sys.exit(1)
