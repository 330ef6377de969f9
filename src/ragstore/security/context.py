"""Who is acting right now, for code far below the face that knows (the audit log inside a delete).

The API sets it per request (principal, request id, client address), the CLI once per command (the OS
user), the scheduler per run. A contextvar carries it across `await` and into the threads Starlette runs
sync routes on, so the facade need not thread an `actor=` argument through every call.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

from ragstore.security.principal import Principal

__all__ = ["CallContext", "acting_as", "begin_call", "current_call", "end_call", "operator_principal"]


@dataclass(frozen=True, slots=True)
class CallContext:
    principal: Principal
    request_id: str = ""
    client_address: str = ""


def operator_principal() -> Principal:
    """The CLI's principal: the operating-system user running it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return Principal.operator(name)


_SYSTEM = CallContext(Principal.system())
_current: ContextVar[CallContext] = ContextVar("ragstore_call", default=_SYSTEM)


def current_call() -> CallContext:
    """The call in progress; the server itself (`system:scheduler`) when no face has set one."""
    return _current.get()


@contextmanager
def acting_as(principal: Principal, *, request_id: str = "", client_address: str = "") -> Iterator[CallContext]:
    call = CallContext(principal, request_id, client_address)
    token = _current.set(call)
    try:
        yield call
    finally:
        _current.reset(token)


def begin_call(principal: Principal, request_id: str = "", client_address: str = "") -> Token[CallContext]:
    """`acting_as` without the generator, for the API's per-request path (a few µs less a request); pair it
    with `end_call(token)` in a `finally`."""
    return _current.set(CallContext(principal, request_id, client_address))


def end_call(token: Token[CallContext]) -> None:
    _current.reset(token)
