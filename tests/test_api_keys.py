"""API keys: their text, what is stored (never the secret), authentication outcomes, the cache and the
buffered last use, rotation, grants, the audit rows, and the `ragstore keys` commands."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ragstore import RagStore
from ragstore.cli import app as cli
from ragstore.cli.keys import parse_duration
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.security_models import ApiKey, AuditLog
from ragstore.errors import Conflict, InvalidInput, NotFound, Unauthorized
from ragstore.security.key_format import KEY_PATTERN, checksum, new_key, parse_key
from ragstore.security.keys import CACHE_TTL_S, FLUSH_INTERVAL_S, INVALID_KEY
from ragstore.security.principal import PrincipalKind, Role


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def keyed(make_settings: Callable[..., Settings], embedder: Any, clock: ManualClock) -> Iterator[RagStore]:
    with RagStore.open(make_settings(auth="required"), embedder=embedder, clock=clock, recover=False) as store:
        yield store


def test_the_key_text_carries_a_checksum_and_256_bits() -> None:
    text, parts = new_key()
    assert KEY_PATTERN.fullmatch(text) and text.startswith(f"rsk_{parts.key_id}_{parts.secret}")
    assert len(parts.secret) == 43 and len(parts.key_id) == 12
    assert parse_key(text) == parts
    body = text[:-6]
    assert text[-6:] == checksum(body)
    for broken in (text[:-1] + ("0" if text[-1] != "0" else "1"), text + "x", text[:-7] + text[-6:], "rsk_" + "a" * 62):
        assert parse_key(broken) is None
    assert len({new_key()[1].secret for _ in range(200)}) == 200


def test_only_the_hmac_of_the_secret_is_stored(keyed: RagStore) -> None:
    created = keyed.keys.create("ci", "read", ["kb"])
    parts = parse_key(created.key)
    assert parts is not None
    with keyed.db.read() as s:
        row = s.scalar(sa.select(ApiKey).where(ApiKey.key_id == parts.key_id))
        assert row is not None
        assert parts.secret not in row.secret_hash and len(row.secret_hash) == 64
        dumped = json.dumps([str(v) for v in s.execute(sa.select(ApiKey.__table__)).all()])
        audit = json.dumps([str(v) for v in s.execute(sa.select(AuditLog.__table__)).all()])
    assert parts.secret not in dumped and parts.secret not in audit
    assert all(parts.secret not in json.dumps(k.model_dump(mode="json")) for k in keyed.keys.list())
    if keyed.db.is_sqlite:
        keyed.db.dispose()
        raw = (keyed.settings.data_dir / "ragstore.db").read_bytes()
        wal = keyed.settings.data_dir / "ragstore.db-wal"
        raw += wal.read_bytes() if wal.exists() else b""
        assert parts.secret.encode() not in raw and created.key.encode() not in raw


def test_authenticate_gives_the_principal_of_a_good_key(keyed: RagStore) -> None:
    created = keyed.keys.create("ci", "write", ["kb", "docs"])
    principal = keyed.keys.authenticate(created.key)
    assert principal.kind is PrincipalKind.KEY and principal.key_id == created.id
    assert principal.grants == {"kb": Role.WRITE, "docs": Role.WRITE}
    assert principal.actor == f"key:{created.key_id}"


def test_every_bad_key_is_refused_alike(keyed: RagStore, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    expired = keyed.keys.create("short", "admin", expires_in=60)
    revoked = keyed.keys.create("gone", "admin")
    keyed.keys.authenticate(revoked.key)  # cached now: the revoke must still take effect at once
    keyed.keys.revoke(revoked.id)
    good = keyed.keys.create("good", "admin")
    unknown, _ = new_key()
    wrong_secret = good.key[:17] + new_key()[1].secret
    wrong_secret += checksum(wrong_secret)
    clock.advance(61)
    caplog.set_level(logging.INFO, logger="ragstore.security.keys")
    for text in (expired.key, revoked.key, unknown, wrong_secret, good.key[:-1], "rsk_", "", "x" * 5000):
        with pytest.raises(Unauthorized) as refused:
            keyed.keys.authenticate(text)
        assert refused.value.message == INVALID_KEY
    logged = caplog.text
    assert "expired" in logged and "wrong secret" in logged and "unknown or revoked" in logged
    for secret_text in (expired.key, revoked.key, good.key, wrong_secret):
        assert secret_text not in logged and secret_text[17:60] not in logged
    assert keyed.keys.authenticate(good.key).key_id == good.id


def test_a_revoke_elsewhere_is_seen_within_the_cache_bound(
    make_settings: Callable[..., Settings], embedder: Any, keyed: RagStore, clock: ManualClock
) -> None:
    created = keyed.keys.create("ci", "read")
    assert keyed.keys.authenticate(created.key)
    with RagStore.open(keyed.settings, embedder=embedder, clock=clock, recover=False) as other_process:
        other_process.keys.revoke(created.id)
    assert keyed.keys.authenticate(created.key)  # still cached here, for at most CACHE_TTL_S
    clock.advance(CACHE_TTL_S + 0.1)
    with pytest.raises(Unauthorized):
        keyed.keys.authenticate(created.key)


def test_last_use_is_buffered_not_written_per_request(keyed: RagStore, clock: ManualClock) -> None:
    created = keyed.keys.create("ci", "read")
    for _ in range(50):
        keyed.keys.authenticate(created.key)
    assert keyed.keys.get(created.id).last_used_at is None  # nothing written yet
    assert keyed.keys.flush_last_used() == 1  # one row, however many requests
    used = keyed.keys.get(created.id).last_used_at
    assert used is not None and abs((used - clock.now()).total_seconds()) < 1
    clock.advance(FLUSH_INTERVAL_S + 1)
    keyed.keys.authenticate(created.key)  # past the interval: a background flush starts
    keyed.keys.close()
    assert keyed.keys.get(created.id).last_used_at == clock.now()


def test_rotation_keeps_the_grants_and_ends_the_old_key_after_the_grace(keyed: RagStore, clock: ManualClock) -> None:
    old = keyed.keys.create("app", "read", ["kb"])
    keyed.keys.grant(old.id, "docs", "write")
    new = keyed.keys.rotate(old.id)
    assert new.key != old.key and new.name == old.name
    assert {(g.collection, g.role) for g in new.grants} == {("kb", "read"), ("docs", "write")}
    before = keyed.keys.get(old.id)
    assert before.replaced_by == new.id
    assert before.expires_at == clock.now() + timedelta(seconds=keyed.settings.key_rotation_grace_s)
    assert keyed.keys.authenticate(old.key) and keyed.keys.authenticate(new.key)  # both work during the grace
    clock.advance(keyed.settings.key_rotation_grace_s + 1)
    with pytest.raises(Unauthorized):
        keyed.keys.authenticate(old.key)
    assert keyed.keys.authenticate(new.key)
    with pytest.raises(Conflict):
        keyed.keys.rotate(old.id)


def test_grants_and_denials_take_effect_at_once(keyed: RagStore) -> None:
    created = keyed.keys.create("app", "read", ["kb"])
    assert keyed.keys.authenticate(created.key).allows(Role.READ, "kb")
    keyed.keys.grant(created.id, "kb", "admin")
    assert keyed.keys.authenticate(created.key).allows(Role.ADMIN, "kb")
    keyed.keys.deny(created.id, "kb")
    assert not keyed.keys.authenticate(created.key).sees_collection("kb")  # no grant left: fail closed
    with pytest.raises(NotFound):
        keyed.keys.deny(created.id, "kb")
    with pytest.raises(NotFound):
        keyed.keys.revoke(12345)
    with pytest.raises(InvalidInput):
        keyed.keys.create("x", "owner")
    with pytest.raises(InvalidInput):
        keyed.keys.create("x", "read", [])
    with pytest.raises(InvalidInput):
        keyed.keys.grant(created.id, "k" * 129, "read")


def test_every_change_is_audited_in_its_transaction(keyed: RagStore) -> None:
    created = keyed.keys.create("app", "read", ["kb"])
    keyed.keys.grant(created.id, "docs", "write")
    keyed.keys.deny(created.id, "docs")
    rotated = keyed.keys.rotate(created.id)
    keyed.keys.revoke(rotated.id)
    keyed.keys.revoke(rotated.id)  # nothing changes, nothing recorded
    with pytest.raises(NotFound):
        keyed.keys.deny(created.id, "nowhere")  # refused: no row
    with keyed.db.read() as s:
        rows = [(r.action, r.target) for r in s.scalars(sa.select(AuditLog).order_by(AuditLog.sequence))]
    assert rows == [
        ("key.create", f"key:{created.key_id}"),
        ("key.grant", f"key:{created.key_id}"),
        ("key.deny", f"key:{created.key_id}"),
        ("key.rotate", f"key:{created.key_id}"),
        ("key.revoke", f"key:{rotated.key_id}"),
    ]


def test_durations() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("90m") == timedelta(minutes=90)
    for bad in ("", "30", "d", "0d", "-1d", "1.5h", "30x", "99999999d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# -- the commands -------------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(data))
    return data


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_init_makes_the_first_admin_key_once(env: Path) -> None:
    code, out = run("init", "--json")
    assert code == 0, out
    made = json.loads(out)["admin_key"]
    key_file = env / "admin.key"
    assert key_file.read_text().strip() == made["key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    code, out = run("init", "--json")
    assert code == 0 and "admin_key" not in json.loads(out)  # an active admin key exists: none made
    code, out = run("keys", "list", "--json")
    listed = json.loads(out)
    assert [k["grants"] for k in listed] == [[{"collection": "*", "role": "admin"}]]
    assert made["key"] not in out


def test_init_with_auth_off_makes_no_key(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGSTORE_AUTH", "off")
    code, out = run("init", "--json")
    assert code == 0 and "admin_key" not in json.loads(out) and not (env / "admin.key").exists()


def test_the_keys_commands(env: Path) -> None:
    assert run("init")[0] == 0
    code, out = run(
        "keys", "create", "--name", "app", "--role", "read", "-c", "kb", "-c", "docs", "--expires-in", "30d", "--json"
    )
    assert code == 0, out
    created = json.loads(out)
    assert created["key"].startswith("rsk_") and {g["collection"] for g in created["grants"]} == {"kb", "docs"}
    code, out = run("keys", "grant", str(created["id"]), "--collection", "kb", "--role", "write", "--json")
    assert code == 0 and {"collection": "kb", "role": "write"} in json.loads(out)["grants"]
    code, out = run("keys", "deny", str(created["id"]), "--collection", "docs")
    assert code == 0 and "docs" not in out
    code, out = run("keys", "rotate", str(created["id"]))
    assert code == 0 and "rsk_" in out
    code, out = run("keys", "revoke", str(created["id"]), "--json")
    assert code == 0 and json.loads(out)["revoked_at"]
    code, out = run("keys", "list")
    assert code == 0 and "app" in out and created["key"] not in out
    for args, said in (
        (("keys", "create", "--name", "x", "--role", "read", "--expires-in", "30x"), "--expires-in"),
        (("keys", "create", "--name", "x", "--role", "owner"), "unknown role"),
        (("keys", "revoke", "999"), "no API key has id 999"),
        (("keys", "deny", "1", "--collection", "nowhere"), "no grant"),
    ):
        code, out = run(*args)
        assert code == 2 and said in out and len(out.strip().splitlines()) == 1, (args, out)


def test_serve_refuses_auth_off_on_a_public_address(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGSTORE_AUTH", "off")
    code, out = run("serve", "--host", "0.0.0.0")
    assert code == 2 and "RAGSTORE_AUTH" in out
    monkeypatch.setenv("RAGSTORE_API_HOST", "192.0.2.10")
    code, out = run("serve")
    assert code == 2 and "RAGSTORE_AUTH" in out


def test_requests_that_find_a_key_lapsed_together_share_one_lookup(keyed: RagStore, clock: ManualClock) -> None:
    """Under load every request carrying a key finds its cache entry lapsed at the same moment (each
    CACHE_TTL_S): one database lookup serves them all instead of one per request on the worker threads."""
    import asyncio

    import httpx

    from ragstore.api.app import create_app

    created = keyed.keys.create("herd", "read")
    app = create_app(store=keyed)
    app.state.store = keyed
    lookups = []
    authenticate = keyed.keys.authenticate

    def counted(text: str) -> Any:
        lookups.append(text)
        return authenticate(text)

    keyed.keys.authenticate = counted  # type: ignore[method-assign]

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {created.key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answers = await asyncio.gather(
                *(client.get("/v1/auth/me", headers=headers) for _ in range(12))
            )  # under MAX_CONCURRENT_REQUESTS
        return [a.status_code for a in answers]

    assert asyncio.run(burst()) == [200] * 12
    assert len(lookups) == 1
    clock.advance(60)  # every entry lapses together
    assert asyncio.run(burst()) == [200] * 12
    assert len(lookups) == 2
