"""One HTTP exchange as data (`Call`), and operations of several exchanges as plans (`Plan`).

The sync and the async client must do exactly the same requests and parse them the same way; writing each
operation twice would let the two drift. So an operation is written once, without I/O: a `Call` says what
to send and how to read the answer, and a `Plan` (a generator) yields calls (and `Pause`s, for polling) and
receives their results. `http.SyncHttp` and `http.AsyncHttp` only drive them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

__all__ = ["Call", "Pause", "Plan", "Step", "json_of", "nothing", "parsed", "parsed_list", "segment"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """A request and the function that turns its (successful) response into the typed result.

    `idempotent`: sending it twice does no more than sending it once (reads, searches, a delete), so a
    request that may have reached the server before the connection failed can be sent again (see
    `retry.py` for the whole rule).
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    idempotent: bool = False
    timeout: float | None = field(default=None)  # None: the client's timeout


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait this many seconds before the next step of a plan (a job or a backup being followed)."""

    seconds: float


Step: TypeAlias = "Call[Any] | Pause"
Plan: TypeAlias = Generator[Step, Any, T]


def segment(value: str | int) -> str:
    """A path segment, percent-encoded (a collection name may hold `/`, `?` or `#`)."""
    return quote(str(value), safe="")


def json_of(response: httpx.Response) -> Any:
    return response.json()


def nothing(_: httpx.Response) -> None:
    return None


def parsed(model: type[M]) -> Callable[[httpx.Response], M]:
    """The response body as `model`. `by_name`: some results read ORM attributes by an alias (`metadata_`)
    that the JSON, written by field name, does not carry."""

    def parse(response: httpx.Response) -> M:
        return model.model_validate(response.json(), by_name=True)

    return parse


def parsed_list(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    def parse(response: httpx.Response) -> list[M]:
        return [model.model_validate(item, by_name=True) for item in response.json()]

    return parse


def adapted(kind: Any) -> Callable[[httpx.Response], Any]:
    """The response body validated as any type pydantic knows (a list of dataclasses, say)."""
    adapter: TypeAdapter[Any] = TypeAdapter(kind)

    def parse(response: httpx.Response) -> Any:
        return adapter.validate_python(response.json())

    return parse
