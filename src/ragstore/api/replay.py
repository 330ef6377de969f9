"""A body read ahead by a middleware, handed on to the app as if it had not been read."""

from __future__ import annotations

from starlette.types import Message, Receive

__all__ = ["replaying"]


def replaying(first: Message, receive: Receive) -> Receive:
    """A `receive` that answers `first` once, then the real one: both the request guard and the cached-search
    fast path read a whole body before deciding, and the app behind them must still see it."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return replay
