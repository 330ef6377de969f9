"""No plaintext at rest: after keys and users are made, used, rotated and changed, neither a key's secret nor a
password nor a refresh token appears anywhere in the database files (SQLite, its WAL included) or in a
`pg_dump` of the PostgreSQL schema, in any spelling (raw, hex, base64)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable
from typing import Any

import pytest

from ragstore.config import Settings
from ragstore.service import RagStore

from pgtools import dump_schema

PASSWORDS = ["correct horse battery staple", "비밀번호는 한국어로도 됩니다", "second password 2"]


def spellings(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")]


def database_bytes(settings: Settings) -> bytes:
    """Every byte the relational store keeps: the SQLite files, or a plain pg_dump of the test's schema."""
    if settings.is_sqlite:
        files = [p for p in settings.data_dir.rglob("*") if p.is_file() and "ragstore.db" in p.name]
        assert files
        return b"".join(p.read_bytes() for p in files)
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed (Debian: postgresql-client)")
    dump = dump_schema(settings.sqlalchemy_url)
    assert b"api_keys" in dump and b"sessions" in dump
    return dump


def test_nothing_secret_is_stored_in_plain_text(make_settings: Callable[..., Settings], embedder: Any) -> None:
    settings = make_settings(auth="required")
    secrets: list[str] = []
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")
        made = [
            store.keys.create("admin", "admin"),
            store.keys.create("reader", "read", ["kb"], expires_in=3600),
            store.keys.create("metrics", "metrics"),
        ]
        made.append(store.keys.rotate(made[1].id))
        for created in made:
            store.keys.authenticate(created.key)  # used: last_used_at is written at close
            secrets += [created.key, created.key.split("_", 2)[2]]
        store.users.create("ada@example.org", PASSWORDS[0], role="admin", display_name="Ada")
        store.users.create("min@example.org", PASSWORDS[1], role="read")
        first = store.users.login("ada@example.org", PASSWORDS[0])
        renewed = store.users.refresh(first.refresh_token)
        store.users.set_password("min@example.org", PASSWORDS[2])
        second = store.users.login("min@example.org", PASSWORDS[2])
        secrets += [first.refresh_token, renewed.refresh_token, second.refresh_token, *PASSWORDS]
        for created in made[:2]:
            secrets.append(created.key)
    blob = database_bytes(settings)
    assert b"ada@example.org" in blob  # the check reads the real rows
    found = [(value[:12], spelled[:16]) for value in secrets for spelled in spellings(value) if spelled in blob]
    assert not found, f"stored in plain text: {found}"
