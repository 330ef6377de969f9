"""What the vector backends that talk to a separate store (Milvus, Chroma) share: naming and retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from ragstore.errors import Unavailable
from ragstore.valid_text import ascii_digits

__all__ = ["RemoteStore", "collection_ids", "collection_name", "with_retries"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def collection_name(prefix: str, collection_id: int) -> str:
    """`{prefix}c{id}`: letters, digits and underscores only, which every Milvus and Chroma accepts."""
    return f"{prefix}c{collection_id}"


def collection_ids(names: Iterable[str], prefix: str) -> list[int]:
    """The ragstore collection ids among a store's collection names (others' collections are ignored)."""
    out = []
    for name in names:
        rest = name[len(prefix) :] if name.startswith(prefix) else ""
        if rest.startswith("c") and ascii_digits(rest[1:]):
            out.append(int(rest[1:]))
    return sorted(out)


def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    where: str,
    retries: int,
    backoff_s: float,
    transient: Callable[[Exception], bool],
    describe: Callable[[Exception], str] = str,
) -> T:
    """Call `fn`, retrying transient failures with exponential backoff; the last one becomes `Unavailable`.

    Anything `transient` rejects propagates at once (a wrong argument, a missing collection, or our own
    errors), so only what a restart or a dropped connection explains is retried.
    """
    delay = backoff_s
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:
            if not transient(exc):
                raise
            if attempt == retries:
                raise Unavailable(f"{where}: {what} failed: {describe(exc)}") from exc
            log.warning("%s: %s failed (%s); retrying in %.1f s", where, what, describe(exc), delay)
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


class RemoteStore:
    """The part of a client-server backend (Milvus, Chroma) that names its collections and retries its calls.

    A backend sets `where`, `prefix`, `retries` and `backoff_s`, and says which failures a retry can fix
    (`_transient`) and how to word one (`_describe`); what a permanent failure becomes stays its own.
    """

    where: str  # the store, as messages name it
    prefix: str
    retries: int
    backoff_s: float

    def _name(self, collection_id: int) -> str:
        return collection_name(self.prefix, collection_id)

    def _transient(self, exc: Exception) -> bool:
        raise NotImplementedError

    def _describe(self, exc: Exception) -> str:
        return str(exc)

    def _retried(self, what: str, fn: Callable[[], T]) -> T:
        return with_retries(
            fn,
            what=what,
            where=self.where,
            retries=self.retries,
            backoff_s=self.backoff_s,
            transient=self._transient,
            describe=self._describe,
        )
