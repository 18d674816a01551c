"""Settings: one frozen object built once from ``MAILER_*`` and ``DATABASE_URL``.

Every default lives in this module. Every CLI option that tunes the engine reads its
default from here, so ``mailer worker --batch-size 50`` and ``MAILER_BATCH_SIZE=50`` are
the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Engine configuration; environment variable names are ``MAILER_<FIELD>`` upper-cased,
    except ``database_url`` which is ``DATABASE_URL``."""

    #: PostgreSQL URL; empty means the embedded server under ``home``.
    database_url: str = ""
    #: Where the embedded PostgreSQL, the generated secret key and sink mail live; resolved
    #: once to an absolute path (a relative MAILER_HOME is taken from the current
    #: directory). Default: ``$XDG_DATA_HOME/mailer``, else ``~/.local/share/mailer``, the
    #: same from every directory (``mailer db url`` prints it).
    home: Path = field(default_factory=lambda: default_home())
    #: Encrypts credentials at rest and signs tokens; generated under ``home`` if unset.
    secret_key: str = ""
    #: Where tracking and unsubscribe links point.
    base_url: str = "http://127.0.0.1:8025"
    #: One-shot commands give up connecting to the database after this many seconds (each
    #: command first opens one probe connection, so a wrong DATABASE_URL fails fast).
    connect_timeout_seconds: float = 5.0
    #: Rows claimed per claim query.
    batch_size: int = 100
    #: How long a claimed row stays leased without a heartbeat before others recover it.
    lease_seconds: float = 60.0
    #: Worker heartbeat: renews leases, re-reads the account's settings (admin UPDATEs).
    heartbeat_seconds: float = 2.0
    #: Idle workers claim this often on average even without a NOTIFY (each wait is spread
    #: over 0.5 to 1.5 times it, so a fleet started together does not poll in step; rows
    #: that become due wake them on time anyway; this only covers a missed NOTIFY and rows
    #: requeued by recovery). Each poll is a query. Under ``mailer run`` the orchestrator
    #: does this check for all its workers in one query every half of it and wakes those
    #: with rows due; its idle workers then poll only every ~10 minutes.
    poll_seconds: float = 60.0
    #: First retry delay of a transient failure; doubles per attempt, with jitter.
    retry_base_seconds: float = 60.0
    #: Longest delay between two attempts of one row.
    retry_max_seconds: float = 3600.0
    #: First account-level backoff (throttling, server unreachable); doubles per repeat.
    account_backoff_base_seconds: float = 30.0
    #: Longest account-level backoff.
    account_backoff_max_seconds: float = 900.0
    #: SMTP connect/command timeout.
    smtp_timeout_seconds: float = 30.0
    #: The name Mailer gives in SMTP EHLO (an account's own ``ehlo_hostname`` wins);
    #: empty = this host's fully qualified name (``socket.getfqdn()``). Strict servers
    #: refuse a name that is not fully qualified, such as ``localhost``.
    ehlo_hostname: str = ""
    #: Reconnect after this many messages on one SMTP connection.
    messages_per_connection: int = 100
    #: Outcomes (journaled at once) reach PostgreSQL with the next send's mark once this
    #: many are buffered, or once the oldest is ``result_flush_seconds`` old, or when the
    #: worker waits or stops. A crash of the whole host can re-send the rows whose
    #: outcomes were in neither PostgreSQL nor the fsynced journal: at most this many.
    result_batch_size: int = 50
    #: The longest an outcome waits in memory (journaled) before PostgreSQL has it.
    result_flush_seconds: float = 0.5
    #: The outcome journal (MAILER_HOME/journal) is fsynced at least this often: a crash of
    #: the whole host can lose the outcomes of this interval (a killed worker loses none).
    journal_fsync_seconds: float = 1.0
    #: A row fails as a poison row once this many workers died while preparing it.
    poison_threshold: int = 3
    #: A reply lost after the end of DATA: ``retry`` (same Message-ID; receivers
    #: de-duplicate on it) or ``fail`` the row. Either way it counts against the limits.
    unknown_outcome: str = "retry"
    #: How long a worker keeps retrying to write outcomes through a database outage before
    #: it exits (its journal keeps them; its successor replays it).
    db_outage_seconds: float = 60.0
    #: On SIGTERM, in-flight sends get this long to finish before the rest is returned.
    shutdown_grace_seconds: float = 30.0
    #: Orchestrator: how often it re-reads sender_accounts (NOTIFY makes it sooner).
    orchestrator_poll_seconds: float = 2.0
    #: Orchestrator: fork workers from one preloaded template process (Linux; shares the
    #: imported code between workers, starts them in milliseconds); off: spawn each as a
    #: fresh ``mailer worker`` interpreter.
    fork_server: bool = True
    #: Worker: the process that started it (``mailer run``) holds the account's advisory
    #: lock on its own session and relays wake-ups as signals (SIGUSR1: new mail, SIGUSR2:
    #: the account changed), so the worker opens no session of its own while idle. Set by
    #: ``mailer run`` for its workers; never set it for a standalone ``mailer worker``.
    lock_held_by_parent: bool = False
    #: Workers under ``mailer run`` run their queries on this URL instead of
    #: ``DATABASE_URL``: a PgBouncer in ``pool_mode = transaction`` in front of the same
    #: database (README "PgBouncer for workers"); empty = ``DATABASE_URL``. Their queries
    #: need no session state between transactions; the orchestrator's session (account
    #: locks, LISTEN), its companions, migrations and a standalone ``mailer worker`` (which
    #: holds its own lock and LISTENs) do: they always use ``DATABASE_URL``.
    worker_database_url: str = ""
    #: Server-side prepared statements on workers' query connections (psycopg prepares a
    #: statement run 5 times): ``auto`` = on over ``DATABASE_URL``, off over
    #: ``MAILER_WORKER_DATABASE_URL`` (PgBouncer before 1.21 cannot carry them in
    #: transaction mode); ``on`` (PgBouncer >= 1.21 with ``max_prepared_statements`` > 0)
    #: or ``off`` forces it.
    worker_prepared_statements: str = "auto"
    #: Orchestrator: this host's name among the orchestrators sharing the database
    #: (``worker_hosts.host_id``); empty = the machine's hostname. Give each orchestrator
    #: of one machine its own.
    host_id: str = ""
    #: Orchestrator: the most accounts this host runs; 0 = no cap. The live hosts split
    #: the active accounts evenly by count within their caps.
    max_accounts_per_host: int = 0
    #: Orchestrator: a host whose heartbeat (every pass, at least every
    #: ``orchestrator_poll_seconds``) is older than this is dead; the others take its
    #: accounts. Keep it several times ``orchestrator_poll_seconds``.
    host_dead_seconds: float = 10.0
    #: Orchestrator: this many exits of one worker with an error of its own (exit code 1;
    #: never a kill by a signal) within an hour suspend the account; 0 never does.
    max_crashes_per_hour: int = 3
    #: Refuse addresses on special-use domains (``.test``, ``.local``, ``.internal``,
    #: ``localhost`` ...); by default only RFC 5321/5322 syntax is checked.
    reject_special_use_domains: bool = False
    #: Gmail API root URL; empty = Google's. A proxy, or a stand-in server in tests.
    gmail_api_endpoint: str = ""
    #: Gmail API and token requests: seconds before one is given up.
    gmail_timeout_seconds: float = 30.0
    #: ``mailer dns-check`` asks this nameserver (an IP address, ``address:port`` or
    #: ``[v6]:port``); empty = the system's resolvers.
    dns_nameserver: str = ""
    #: Largest rendered message accepted, in bytes.
    max_message_bytes: int = 10 * 1024 * 1024
    #: ``text`` or ``json`` (one JSON object per line).
    log_format: str = "text"
    log_level: str = "INFO"

    # -- tracking app, unsubscribes, webhooks, reputation (see tracking/) ---------------
    #: Address of the ``mailto:`` List-Unsubscribe entry; empty = the sending account's.
    unsubscribe_mailto: str = ""
    #: Comma-separated SNS TopicArns whose SES notifications ``POST /webhooks/ses``
    #: accepts (and whose subscriptions it confirms); empty accepts none.
    ses_topic_arns: str = ""
    #: SNS messages older than this (their ``Timestamp``) are rejected as stale.
    sns_max_age_seconds: float = 3600.0
    #: A transient (soft) bounce suppresses the address for this long.
    soft_bounce_suppression_hours: float = 24.0
    #: Web app database bound: pool wait and statement timeout, per request or write.
    tracking_db_timeout_seconds: float = 2.0
    #: Which routes ``create_app`` serves: ``tracking``, ``api``, ``admin`` or ``all``
    #: (``MAILER_WEB_ROUTES``; ``mailer web --routes`` sets it for its own process).
    web_routes: str = "all"
    #: HTTP API requests per API key and minute, across every web process.
    api_rate_limit_per_minute: int = 600
    #: Largest CSV body of a campaign recipient upload (``POST /campaigns/{name}/recipients``,
    #: read as a stream and COPYed into the queue); 413 above.
    api_csv_max_bytes: int = 100 * 1024 * 1024
    #: How long such an upload may take, body transfer included (its COPY runs that long;
    #: every other API statement keeps ``tracking_db_timeout_seconds``).
    api_csv_timeout_seconds: float = 900.0
    #: An Idempotency-Key claimed by a request that never answered (its process crashed)
    #: is taken over by the same request after this long (before: 409, retry later).
    api_idempotency_stale_seconds: float = 60.0
    #: Reverse proxies in front of the web app whose X-Forwarded-For is trusted.
    trusted_proxies: int = 0
    #: Admin console (/admin): a login lasts this long.
    admin_session_hours: float = 12.0
    #: Console logins refused after this many failures for one address ...
    admin_login_max_failures: int = 5
    #: ... or this many from one IP address ...
    admin_login_max_failures_per_ip: int = 20
    #: ... within this window (seconds).
    admin_login_window_seconds: float = 900.0
    #: Console figures counted over the whole queue (rows in finished states, campaigns'
    #: rows by state) are recounted in the background when older than this; on a queue
    #: small enough to count in a few ms they are counted on every view instead.
    console_snapshot_seconds: float = 60.0
    #: A click this soon after the message was rendered (sent) is a scanner's.
    scanner_click_seconds: float = 10.0
    #: Clicks on two different links of one message this close together are a scanner's.
    scanner_burst_seconds: float = 2.0
    #: Reputation guard: pause an account whose hard-bounce rate over its recent sends
    #: exceeds this fraction ...
    reputation_max_bounce_rate: float = 0.05
    #: ... or whose complaint rate exceeds this fraction ...
    reputation_max_complaint_rate: float = 0.003
    #: ... once it has at least this many sends in the window.
    reputation_min_sends: int = 200
    #: The window of recent sends judged (never before the account was last resumed).
    reputation_window_hours: float = 168.0
    #: How often a worker checks its own account.
    reputation_check_seconds: float = 30.0

    # -- bounce mail (mailer/bounces: `mailer bounces run`) ---------------------------
    #: Whether ``mailer run`` starts the bounce reader beside the workers.
    bounce_reader: bool = True
    #: How often the bounce reader polls every account's bounce mailbox.
    bounce_poll_seconds: float = 60.0
    #: Messages read from one mailbox per poll (the rest wait for the next poll).
    bounce_batch_size: int = 100
    #: IMAP connect and command timeout.
    imap_timeout_seconds: float = 30.0
    #: Temporary bounces (4.x.x, ``Action: delayed``) only record an event until an address
    #: has this many within ``bounce_soft_window_hours``; then it gets a ``soft_bounce``
    #: suppression that expires after ``soft_bounce_suppression_hours``.
    bounce_soft_threshold: int = 3
    bounce_soft_window_hours: float = 72.0

    # -- outbound webhooks (mailer/webhook_sender.py: `mailer webhooks run`) -----------
    #: Whether ``mailer run`` starts the webhook sender beside the workers.
    webhook_sender: bool = True
    #: Let webhooks reach private, loopback, link-local and other non-public addresses
    #: (an intranet receiver, tests). Off: such targets are refused (SSRF guard).
    webhooks_allow_private: bool = False
    #: Deliveries claimed (and posted concurrently) per batch.
    webhook_batch_size: int = 50
    #: The longest an idle webhook sender sleeps: a NOTIFY wakes it for new deliveries, and
    #: it wakes for the next retry due; this poll is the safety net for a missed NOTIFY.
    webhook_poll_seconds: float = 10.0
    #: Connect/read timeout of one webhook request.
    webhook_timeout_seconds: float = 10.0
    #: First retry delay of a failed delivery; doubles per attempt, with jitter ...
    webhook_retry_base_seconds: float = 5.0
    #: ... up to this ...
    webhook_retry_max_seconds: float = 6 * 3600.0
    #: ... for this long after the event; then the delivery fails for good.
    webhook_retry_hours: float = 72.0
    #: An endpoint whose every attempt failed for this long is disabled (reason shown).
    webhook_disable_after_hours: float = 24.0

    # -- recurring sends (mailer/recurring_scheduler.py: `mailer recurring run`) ------
    #: Whether ``mailer run`` starts the recurring-send scheduler beside the workers (one
    #: leads per database, elected by an advisory lock; the others stand by).
    recurring_scheduler: bool = True
    #: Longest sleep of the leading scheduler between two looks at due schedules (it
    #: wakes sooner for the earliest ``next_run_at`` or a change to a schedule).
    recurring_max_sleep_seconds: float = 30.0
    #: A standing-by scheduler waits on the leader's lock (it takes over the moment the
    #: leader's session ends) in rounds this long, checking for a stop between them.
    recurring_standby_seconds: float = 5.0
    #: Due schedules fired per tick (each in its own transaction).
    recurring_batch_size: int = 100

    @property
    def ses_topic_arn_list(self) -> frozenset[str]:
        """The TopicArn allow-list of ``ses_topic_arns``."""
        return frozenset(arn.strip() for arn in self.ses_topic_arns.split(",") if arn.strip())

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/mailer``, else ``~/.local/share/mailer``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailer"


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return "DATABASE_URL" if field_name == "database_url" else f"MAILER_{field_name.upper()}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``); bad values raise
    ValueError naming the variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in fields(Settings):
        raw = environ.get(env_name(setting.name))
        if raw is None or raw == "":
            continue
        values[setting.name] = _coerce(setting.name, _default(setting), raw)
    values["home"] = Path(values.get("home") or default_home(environ)).expanduser().absolute()
    settings = Settings(**values)
    if settings.unknown_outcome not in ("retry", "fail"):
        raise ValueError(f"{env_name('unknown_outcome')} must be 'retry' or 'fail'")
    if settings.worker_prepared_statements not in ("auto", "on", "off"):
        raise ValueError(f"{env_name('worker_prepared_statements')} must be 'auto', 'on' or 'off'")
    if settings.log_format not in ("text", "json"):
        raise ValueError(f"{env_name('log_format')} must be 'text' or 'json'")
    return settings


def _default(setting: Any) -> Any:
    if setting.default is MISSING:
        return setting.default_factory()
    return setting.default


def _coerce(name: str, default: Any, raw: str) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
        return raw
    except ValueError:
        raise ValueError(
            f"{env_name(name)}={raw!r} is not a valid {type(default).__name__}"
        ) from None
