"""Prometheus metrics, read from the database at scrape time (prometheus-client).

``mailer_queue_rows{status}`` (queue depth by status), ``mailer_sends_total{account,
outcome}`` (send attempts, from ``send_logs``), ``mailer_events_total{type,
suspected_bot}`` (from ``email_events``) and ``mailer_database_up``; plus this process's
event writer: ``mailer_tracking_events_pending`` and ``..._dropped_total``. A scrape
while the database is down still answers, with ``mailer_database_up 0``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tracking.events import EventWriter
from tracking.store import DATABASE_ERRORS, Store, run


class DatabaseCollector(Collector):
    """Queue, send and event counts: three cheap GROUP BYs on one pooled connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mailer_database_up", "1 if the database answered the scrape")
        try:
            with self.store.connection() as conn:
                queue = run(conn, "queue_counts")
                sends = run(conn, "metrics_sends")
                events = run(conn, "metrics_events")
        except DATABASE_ERRORS:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "mailer_queue_rows", "email_queue rows by status", labels=["status"]
        )
        for row in queue:
            depth.add_metric([row["status"]], row["count"])
        yield depth
        attempts = CounterMetricFamily(
            "mailer_sends", "Send attempts by account and outcome", labels=["account", "outcome"]
        )
        for row in sends:
            account = "" if row["account_id"] is None else str(row["account_id"])
            attempts.add_metric([account, row["outcome"]], row["count"])
        yield attempts
        recorded = CounterMetricFamily(
            "mailer_events", "email_events by type", labels=["type", "suspected_bot"]
        )
        for row in events:
            recorded.add_metric([row["type"], str(row["suspected_bot"]).lower()], row["count"])
        yield recorded


class WriterCollector(Collector):
    """This process's background event writer."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "mailer_tracking_events_pending", "Open/click events waiting to be written"
        )
        pending.add_metric([], self.writer.pending)
        yield pending
        dropped = CounterMetricFamily(
            "mailer_tracking_events_dropped",
            "Open/click events dropped (queue full or database down)",
        )
        dropped.add_metric([], self.writer.dropped)
        yield dropped


def make_registry(store: Store, writer: EventWriter) -> CollectorRegistry:
    """A registry of its own per app (several apps may live in one process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(store))
    registry.register(WriterCollector(writer))
    return registry
