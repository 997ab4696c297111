"""Whether a dependency (Redis) answered the last time it was asked; transitions are logged once,
so an outage under load writes two lines, not one per request."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Availability:
    def __init__(self, name: str, *, configured: bool) -> None:
        self.name = name
        self.configured = configured
        self.up = configured

    def succeeded(self) -> None:
        if not self.up:
            log.warning("%s is back", self.name)
        self.up = True

    def failed(self, error: BaseException, consequence: str) -> None:
        if self.up:
            log.warning("%s unavailable (%s): %s", self.name, type(error).__name__, consequence)
        self.up = False

    @property
    def state(self) -> str:
        if not self.configured:
            return "none"
        return "up" if self.up else "down"
