"""Checking a pooled PostgreSQL connection before use, without a round trip when it was used moments ago.

SQLAlchemy's pre-ping sends `SELECT 1` at every checkout. The search path checks out a connection for each
of its statements (`Database.fetch`), so that ping was one round trip more per statement (about a third of
each read's cost on the shared machine, docs/benchmarks.md, issue #22). What the ping is for, a connection
that a server restart, a failover or `pg_terminate_backend` ended, shows without one: the server sends its
FATAL message and closes the socket, so the idle connection's socket reads as ready. A connection checked in
less than `PING_AFTER_S` ago whose socket has nothing to read is used as is; one with something to read, one
idle for longer (a host that vanished without closing anything) or a driver other than psycopg is pinged as
before. A connection found dead is replaced by the pool (`DisconnectionError`), as pre-ping did.
"""

from __future__ import annotations

import select
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

__all__ = ["PING_AFTER_S", "check_before_use", "is_quiet"]

PING_AFTER_S = 5.0
_CHECKED_IN = "ragstore_checked_in"


def check_before_use(engine: Engine) -> None:
    """Give `engine`'s pool (created without `pool_pre_ping`) the check described above."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        last = record.info.get(_CHECKED_IN)
        if last is not None and time.monotonic() - last < PING_AFTER_S and is_quiet(dbapi_conn):
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # whatever the driver raised, the pool retries with a new connection
            raise DisconnectionError(f"the pooled connection failed its ping: {exc}") from exc


def is_quiet(dbapi_conn: Any) -> bool:
    """Whether a psycopg connection is open, idle, and has nothing waiting on its socket (no message from the
    server, no end of stream): then it can be used without a ping. False means "ping it", not "it is dead"."""
    pgconn = getattr(dbapi_conn, "pgconn", None)
    if pgconn is None or getattr(dbapi_conn, "closed", True) or getattr(dbapi_conn, "broken", True):
        return False
    try:
        from psycopg import pq

        if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return False
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except Exception:  # a closed socket, an unexpected driver: the ping decides
        return False
    return not readable
