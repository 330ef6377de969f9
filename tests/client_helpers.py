"""Shared by the client tests: a second store served over HTTP on a loopback port, and a way to compare what
the facade and the client return once the values that must differ (times, generated ids) are named alike."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from ragstore.api.app import create_app
from ragstore.config import Settings
from ragstore.service import RagStore
from servers import app_in_thread

# Values that are the moment or the speed of a call, never the same twice.
TIMED = {
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "verified_at",
    "took_ms",
    "duration_ms",
    "seconds",
    "read_s",
    "total_s",
    "restore_s",
    "open_and_check_s",
    "logical_bytes",
    "stored_bytes",
    "bytes",
    "size_bytes_on_disk",
}
ULID = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")
BACKUP_ID = re.compile(r"\b\d{8}T\d{12}Z-[a-z]+-[0-9a-f]{6}\b")


@dataclass
class Served:
    store: RagStore
    url: str
    key: str


@contextmanager
def served_store(settings: Settings, embedder: Any) -> Iterator[Served]:
    """A store of its own behind a real server (uvicorn on a loopback port), with an admin key."""
    with RagStore.open(settings, embedder=embedder) as remote:
        key = remote.keys.create("client-test", "admin").key
        with app_in_thread(create_app(store=remote)) as url:
            yield Served(remote, url, key)


def second_settings(
    make_settings: Callable[..., Settings], request: pytest.FixtureRequest, database_url: str | None, where: Path
) -> Settings:
    """Settings for a second store: its own folder and, on PostgreSQL, its own schema (dropped at the end)."""
    overrides: dict[str, Any] = {"data_dir": where, "auth": "required"}
    if database_url is not None:
        from pgtools import create_schema, drop_schema

        run_url = request.getfixturevalue("postgres_run_url")
        schema, overrides["database_url"] = create_schema(run_url)
        request.addfinalizer(lambda: drop_schema(run_url, schema))
    return make_settings(**overrides)


def plain(value: Any) -> Any:
    """A result as JSON-like data: models dumped, dataclasses as dicts, errors as (class, code, message)."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Exception):
        return {"error": type(value).__name__, "code": getattr(value, "code", None), "message": str(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Namer:
    """Generated ids (conversation ULIDs, backup ids) renamed by order of first appearance, so two runs of
    one scenario compare equal when they made the same things in the same order."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def text(self, value: str) -> str:
        for pattern in (ULID, BACKUP_ID):
            value = pattern.sub(lambda m: self.names.setdefault(m.group(0), f"<id{len(self.names)}>"), value)
        return value

    def normal(self, value: Any) -> Any:
        if isinstance(value, dict):
            timed = TIMED | ({"size_bytes"} if "action" in value else set())  # a backup run's bytes, not a document's
            found = {
                k: "<t>" if (k in timed or k.endswith("_s")) and v is not None else self.normal(v)
                for k, v in value.items()
            }
            if isinstance(found.get("audit"), str):  # the served store's log also holds its key's creation
                found["audit"] = re.sub(r"\d+ rows", "<n> rows", found["audit"])
            if "conversations" in found and found.get("next_cursor"):
                found["next_cursor"] = "<cursor>"  # a conversation page's cursor holds a time and a ULID
            return found
        if isinstance(value, list):
            return [self.normal(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def normal(results: list[Any]) -> list[Any]:
    namer = Namer()
    return [namer.normal(plain(r)) for r in results]
