"""`client.consistency`: the consistency checker over HTTP (admin keys), as `store.consistency`.

A check runs on the server and stores its report there, recorded with the trigger "api" whatever `trigger`
says (the server names who asked).
"""

from __future__ import annotations

from ragstore.client.calls import Call, parsed, parsed_list, segment
from ragstore.client.http import AsyncHttp, SyncHttp
from ragstore.schemas import ConsistencyReport, ConsistencyRunSummary

__all__ = ["AsyncConsistency", "Consistency"]

PATH = "/admin/consistency"
CHECK_TIMEOUT_S = 3600.0  # a check reads every chunk of the index


def _check(collection: str | None, repair: bool) -> Call[ConsistencyReport]:
    # Not repeated after a lost answer: each run stores a report (harmless, but not what the caller asked).
    body = {"collection": collection} if collection is not None else None
    path = f"{PATH}/repair" if repair else PATH
    return Call("POST", path, parsed(ConsistencyReport), json=body, timeout=CHECK_TIMEOUT_S)


def _history(limit: int) -> Call[list[ConsistencyRunSummary]]:
    return Call("GET", f"{PATH}/history", parsed_list(ConsistencyRunSummary), params={"limit": limit}, idempotent=True)


def _report(report_id: int | None) -> Call[ConsistencyReport]:
    path = PATH if report_id is None else f"{PATH}/{segment(report_id)}"
    return Call("GET", path, parsed(ConsistencyReport), idempotent=True)


class Consistency:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def check(
        self, collection: str | None = None, *, repair: bool = False, trigger: str = "manual", slot: str | None = None
    ) -> ConsistencyReport:
        return self._http.run(_check(collection, repair))

    def history(self, limit: int = 20) -> list[ConsistencyRunSummary]:
        return self._http.run(_history(limit))

    def report(self, report_id: int | None = None) -> ConsistencyReport:
        return self._http.run(_report(report_id))


class AsyncConsistency:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def check(
        self, collection: str | None = None, *, repair: bool = False, trigger: str = "manual", slot: str | None = None
    ) -> ConsistencyReport:
        return await self._http.run(_check(collection, repair))

    async def history(self, limit: int = 20) -> list[ConsistencyRunSummary]:
        return await self._http.run(_history(limit))

    async def report(self, report_id: int | None = None) -> ConsistencyReport:
        return await self._http.run(_report(report_id))
