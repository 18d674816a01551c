"""What the tracking app's views share: settings, token codec, store, event writer, SNS
verifier. One :class:`Services` per app, in ``app.extensions["mailer"]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from prometheus_client import CollectorRegistry

from mailer.config import Settings
from mailer.tokens import TokenCodec
from tracking.events import EventWriter
from tracking.sns import SnsVerifier
from tracking.store import Store


@dataclass
class Services:
    """The app's collaborators; tests inject fakes through ``create_app``'s config."""

    settings: Settings
    codec: TokenCodec
    store: Store
    writer: EventWriter
    verifier: SnsVerifier
    #: GETs an SNS SubscribeURL (already checked to be an SNS URL).
    confirm_subscription: Callable[[str], object]
    clock: Callable[[], float]
    registry: CollectorRegistry

    def close(self) -> None:
        """Write pending events, then close the database pool."""
        self.writer.close()
        self.store.close()


def services() -> Services:
    """The current app's :class:`Services`."""
    return current_app.extensions["mailer"]
