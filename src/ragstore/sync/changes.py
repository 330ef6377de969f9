"""What happens after a commit changed collections: caches forget, other processes hear, the index catches up.

Every feature that writes (documents, index maintenance, repairs) needs the same three steps; keeping them in
one object is what lets them live in separate packages without each reaching into the event bus, the version
cache and the outbox applier on its own.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ragstore.cache.bus import EventBus
from ragstore.cache.versions import CollectionVersions
from ragstore.errors import Unavailable
from ragstore.sync.applier import OutboxApplier
from ragstore.sync.worker import SyncWorker

__all__ = ["ChangeFeed"]


class ChangeFeed:
    """The store's signals about change: announcements between processes and the nudges to the sync worker."""

    def __init__(self, applier: OutboxApplier, versions: CollectionVersions, bus: EventBus | None) -> None:
        self.applier = applier
        self.versions = versions
        self.bus = bus
        self.worker: SyncWorker | None = None  # set while this process runs an in-process sync worker
        # Who sent an announcement: this store, not this process (a process may open several stores).
        self.instance = uuid.uuid4().hex
        if bus is not None:
            bus.subscribe(self._on_event)
            bus.on_reconnect(versions.forget)
        applier.on_finished = self.announce

    def announce(self, collection_ids: set[int]) -> None:
        """After a commit that changed collections: drop what this process knew, and tell the others."""
        for cid in collection_ids:
            self.versions.forget(cid)
            if self.bus is not None:
                self.bus.publish("collection", id=cid, sender=self.instance)

    def apply_now(self) -> None:
        """Apply what this call queued now; on failure the worker retries with backoff."""
        self.applier.apply_pending()

    def queued(self) -> None:
        """Work was left unleased in the outbox: this process's worker, or any `ragstore worker`, claims it."""
        if self.bus is not None:
            self.bus.publish("outbox", sender=self.instance)
        if self.worker is not None:
            self.worker.wake()

    def wait_until_applied(self, timeout_s: float) -> None:
        """Block until no outbox operation is pending (raises Unavailable on timeout).

        Without a worker in this process, the caller's thread applies the operations itself.
        """
        deadline = time.monotonic() + timeout_s
        pause = 0.002
        while self.applier.has_pending():
            if time.monotonic() > deadline:
                raise Unavailable(f"the vector index did not catch up within {timeout_s:.0f} s")
            if self.worker is None:
                self.applier.apply_pending(ignore_schedule=True)
            else:
                # Polling backs off: every check takes the GIL and a SQL read from the worker it waits for.
                self.worker.wake()
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("sender") == self.instance:
            return
        if event.get("e") == "collection" and isinstance(event.get("id"), int):
            self.versions.forget(event["id"])
        if self.worker is not None:
            self.worker.wake()  # replay what another process finished, or claim what it queued
