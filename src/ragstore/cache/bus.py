"""Announcements between processes over Redis pub/sub: a collection changed; the outbox has work.

Best effort by design: every receiver also polls (the sync worker) or re-reads SQL (collection versions)
when the bus is down, so a lost message delays, and never loses, anything. The listener thread
reconnects after a Redis outage and then tells its handlers to forget what they learnt from the bus.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ragstore.cache.layers import FORMAT

if TYPE_CHECKING:
    from ragstore.cache.redis import RedisConnection

__all__ = ["EventBus"]

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], None]


class EventBus:
    def __init__(self, connection: RedisConnection, *, namespace: str = "ragstore", store: str = "0") -> None:
        self.connection = connection
        self.channel = f"{namespace}:{FORMAT}:{store}:events"
        self._handlers: list[Handler] = []
        self._on_reconnect: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.subscribed = threading.Event()
        self.received = 0
        self.published = 0

    @property
    def healthy(self) -> bool:
        return self.subscribed.is_set() and self.connection.available

    def publish(self, event: str, **fields: Any) -> None:
        payload = json.dumps({"e": event, **fields}, separators=(",", ":"))
        if self.connection.call("PUBLISH", self.connection.client.publish, self.channel, payload) is not None:
            self.published += 1

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._on_reconnect.append(callback)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._listen_forever, name="ragstore-bus", daemon=True)
            self._thread.start()

    def _listen_forever(self) -> None:
        while not self._stop.is_set():
            pubsub = self.connection.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.channel)
                self.subscribed.set()
                for callback in self._on_reconnect:
                    callback()  # anything learnt before (or missed while down) is stale
                self.connection.recovered()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["data"])
            except Exception as exc:
                self.subscribed.clear()
                self.connection.trip("SUBSCRIBE", exc)
                self._stop.wait(self.connection.retry_after_s)
            finally:
                self.subscribed.clear()
                try:
                    pubsub.close()
                except Exception:
                    log.debug("closing the pub/sub connection failed", exc_info=True)

    def _dispatch(self, data: bytes | str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("ignoring a malformed message on %s: %r", self.channel, data[:200])
            return
        self.received += 1
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("event handler failed for %s", event)

    def wait_subscribed(self, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.subscribed.wait(0.05):
                return True
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)
            self._thread = None

    def status(self) -> dict[str, object]:
        return {
            "status": "ok" if self.healthy else "degraded",
            "channel": self.channel,
            "subscribed": self.subscribed.is_set(),
            "published": self.published,
            "received": self.received,
        }
