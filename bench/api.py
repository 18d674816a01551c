"""The API figure: ``POST /emails`` requests/s from concurrent clients and ``POST
/emails/batch`` (500 messages a request) messages/s, the API under gunicorn, each next to
the same rows inserted by plain SQL (one INSERT a row; one INSERT a batch) from as many
concurrent connections, in the same run. Every POST carries an ``Idempotency-Key``, as
:mod:`mailer.client` sends it."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, TypeVar

import httpx
import psycopg

from bench.env import Server, Sink, connect, fresh_database, mailer_env, one, q
from mailer.api_keys import ApiKeyManager
from tracking.gunicorn_child import gunicorn_child

S = TypeVar("S")
BATCH = 500
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
#: The goal: a batch through the API at least this fraction of the SQL insert rate.
BATCH_GOAL = 0.5


def _message(i: int) -> dict[str, Any]:
    return {
        "to": {"email": f"customer{i}@example.org", "name": f"Customer {i}"},
        "subject": f"Your order #{i} has shipped",
        "html": f"<p>Hello Customer {i},</p><p>your order <b>#{i}</b> left our warehouse "
        f"today. Track it at https://shop.example/t/{i}.</p><p>Thank you!</p>",
        "text": f"Hello Customer {i},\nyour order #{i} left our warehouse today.\n"
        f"Track it at https://shop.example/t/{i}.\nThank you!",
        "campaign": "bench",
    }


def _sql_row(message: dict[str, Any]) -> dict[str, str]:
    return {
        "to_address": message["to"]["email"],
        "to_name": message["to"]["name"],
        "subject": message["subject"],
        "html": message["html"],
        "text": message["text"],
        "campaign": message["campaign"],
    }


def _sql_columns(messages: list[dict[str, Any]]) -> dict[str, list[str]]:
    rows = [_sql_row(m) for m in messages]
    return {k: [r[k] for r in rows] for k in rows[0]}


@contextmanager
def gunicorn(url: str) -> Iterator[str]:
    """The API alone under gunicorn on a free port; yields its base URL."""
    env = mailer_env(url, MAILER_WEB_ROUTES="api", MAILER_API_RATE_LIMIT_PER_MINUTE=str(10**9))
    with gunicorn_child(
        env, workers=GUNICORN_WORKERS, threads=GUNICORN_THREADS, startup_seconds=60
    ) as base:
        yield base


def parallel(
    chunks: list[list[Any]],
    open_state: Callable[[], AbstractContextManager[S]],
    work: Callable[[S, Any], None],
) -> float:
    """Run ``work(state, job)`` for every job, one thread (with its own state) per chunk,
    all starting together; the seconds from the start until the last one finished."""
    barrier = threading.Barrier(len(chunks) + 1)
    errors: list[BaseException] = []

    def run(chunk: list[Any]) -> None:
        try:
            with open_state() as state:
                barrier.wait()
                for job in chunk:
                    work(state, job)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    with suppress(threading.BrokenBarrierError):
        barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def _split(jobs: list[Any], parts: int) -> list[list[Any]]:
    return [jobs[i::parts] for i in range(parts)]


def _post(base: str, key: str) -> Callable[[], AbstractContextManager[httpx.Client]]:
    headers = {"Authorization": f"Bearer {key}"}
    return lambda: httpx.Client(base_url=base + "/api/v1", headers=headers, timeout=120)


def _post_json(client: httpx.Client, path: str, body: bytes) -> dict[str, Any]:
    """POST a JSON body encoded beforehand (the client's encoding is not the API's cost,
    as building the SQL parameters is not timed either); the answer's document."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
    answer = client.post(path, content=body, headers=headers)
    if answer.status_code != 202:
        raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text[:200]}")
    return answer.json()


def _send_one(client: httpx.Client, body: bytes) -> None:
    _post_json(client, "/emails", body)


def _send_batch(client: httpx.Client, body: bytes) -> None:
    if _post_json(client, "/emails/batch", body)["queued"] != BATCH:
        raise RuntimeError("a batch was not queued whole")


def _encoded(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _timed_phase(conn: psycopg.Connection, expected: int, run: Callable[[], float]) -> float:
    """Rows per second of ``run`` on an empty queue, checking every row arrived."""
    conn.execute(q("api_reset"))
    conn.execute(q("checkpoint"))
    seconds = run()
    got = one(conn, "api_queue_count")["n"]
    if got != expected:
        raise RuntimeError(f"{got} rows queued, {expected} expected")
    return expected / seconds


def measure(url: str, base: str, key: str, sizes: dict[str, int]) -> dict[str, float]:
    """The four rates (API and SQL, single rows and batches), each the median of
    ``reps`` runs, the four phases taking turns so drift on a shared machine hits all."""
    clients, n, count = sizes["api_clients"], sizes["api_requests"], sizes["api_batches"]
    messages = [_message(i) for i in range(n)]
    batches = [[_message(b * BATCH + i) for i in range(BATCH)] for b in range(count)]
    batch_clients = min(sizes["api_batch_clients"], count)
    post = _post(base, key)

    def sql_conn() -> AbstractContextManager[psycopg.Connection]:
        return connect(url)

    def sql_one(c: psycopg.Connection, row: dict[str, str]) -> None:
        c.execute(q("api_single_row"), row).fetchone()

    def sql_batch(c: psycopg.Connection, columns: dict[str, list[str]]) -> None:
        c.execute(q("api_batch_rows"), columns).fetchall()

    api_one = _split([_encoded(m) for m in messages], clients)
    sql_rows = _split([_sql_row(m) for m in messages], clients)
    api_many = _split([_encoded({"emails": b}) for b in batches], batch_clients)
    sql_many = _split([_sql_columns(b) for b in batches], batch_clients)
    phases: dict[str, tuple[int, Callable[[], float]]] = {
        "api_single": (n, lambda: parallel(api_one, post, _send_one)),
        "sql_single": (n, lambda: parallel(sql_rows, sql_conn, sql_one)),
        "api_batch": (count * BATCH, lambda: parallel(api_many, post, _send_batch)),
        "sql_batch": (count * BATCH, lambda: parallel(sql_many, sql_conn, sql_batch)),
    }
    rates: dict[str, list[float]] = {name: [] for name in phases}
    with connect(url) as conn:
        for _ in range(sizes["reps"]):
            for name, (expected, run) in phases.items():
                rates[name].append(_timed_phase(conn, expected, run))
    return {name: statistics.median(values) for name, values in rates.items()}


def fig_api(server: Server, sink: Sink, **sizes: Any) -> dict[str, Any]:
    url = fresh_database(server)
    with connect(url) as conn:
        key = ApiKeyManager(conn).create("bench", "admin", ()).secret
    with gunicorn(url) as base:
        warm_up = [_encoded(_message(-i)) for i in range(1, 17)]
        parallel(_split(warm_up, GUNICORN_WORKERS * 2), _post(base, key), _send_one)
        rates = measure(url, base, key, sizes)
    single_ratio = rates["api_single"] / rates["sql_single"]
    batch_ratio = rates["api_batch"] / rates["sql_batch"]
    clients, batch_clients = sizes["api_clients"], sizes["api_batch_clients"]
    server_desc = f"gunicorn {GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads"
    return {
        "rates": rates,
        "single_ratio": single_ratio,
        "batch_ratio": batch_ratio,
        "server": server_desc,
        "table": [
            [
                f"POST /emails, {sizes['api_requests']:,} requests, {clients} clients, "
                f"median of {sizes['reps']} "
                f"({server_desc})",
                f"{rates['api_single']:,.0f} req/s",
                "",
                "-",
            ],
            [
                f"  same rows, one SQL INSERT each, {clients} connections",
                f"{rates['sql_single']:,.0f} rows/s (ratio {single_ratio:.2f})",
                "",
                "-",
            ],
            [
                f"POST /emails/batch of {BATCH}, {sizes['api_batches']} batches, "
                f"{batch_clients} clients",
                f"{rates['api_batch']:,.0f} msg/s",
                "",
                "-",
            ],
            [
                f"  same rows, one SQL INSERT per {BATCH}, {batch_clients} connections",
                f"{rates['sql_batch']:,.0f} rows/s",
                "",
                "-",
            ],
            [
                "  batch API / SQL",
                f"{batch_ratio:.2f}",
                f"≥ {BATCH_GOAL}",
                "ok" if batch_ratio >= BATCH_GOAL else "MISS",
            ],
        ],
    }
