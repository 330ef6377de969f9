"""What the vector backends that talk to a separate store (Milvus, Chroma) share: naming and retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from ragstore.errors import Unavailable

__all__ = ["collection_ids", "collection_name", "with_retries"]

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
        if rest.startswith("c") and rest[1:].isdigit():
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
