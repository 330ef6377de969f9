"""The secret vault (`store.secrets`, security/vault.py) on SQLite and PostgreSQL: values round-trip, a row
moved to another (scope, name) is refused, rotation resumes after a crash, a row under an unknown key names
the setting to fix, and no value is ever in the database file or a dump in any encoding."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.security_models import AuditLog, EncryptedSecret
from ragstore.errors import ConfigError, InvalidInput, NotFound, OperationFailed
from ragstore.migrations import Migrator
from ragstore.security.audit import AuditTrail
from ragstore.security.local_secrets import secrets_dir
from ragstore.security.vault import MAX_VALUE_BYTES, KeyRing, SecretVault, key_id_of, scope_of

from pgtools import dump_schema

OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(100, 132))
OTHER_KEY = bytes(range(200, 232))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def db(make_settings: Callable[..., Settings]) -> Iterator[Database]:
    settings = make_settings()
    settings.make_data_dir()
    database = Database(settings)
    Migrator(database.engine).ensure_current(auto_upgrade=True)
    yield database
    database.dispose()


def vault_for(db: Database, current: bytes, previous: bytes | None = None) -> SecretVault:
    """A vault over `db` holding these keys, as a server configured with them would."""
    settings = db.settings.model_copy(
        update={
            "encryption_key": SecretStr(b64(current)),
            "encryption_key_previous": SecretStr(b64(previous)) if previous else None,
        }
    )
    return SecretVault(settings, db, AuditTrail(db, clock=ManualClock()), clock=ManualClock())


def audit_actions(db: Database) -> list[tuple[str, str]]:
    with db.read() as s:
        return [(r.action, r.target) for r in s.execute(select(AuditLog).order_by(AuditLog.sequence)).scalars()]


def test_a_secret_round_trips_and_is_listed_without_its_value(db: Database) -> None:
    vault = vault_for(db, OLD_KEY)
    scope = scope_of("collection", "docs")
    info = vault.put(scope, "openai_api_key", "sk-round-trip-1f2e3d")
    assert (info.scope, info.name, info.key_id) == ("collection:docs", "openai_api_key", key_id_of(OLD_KEY))
    assert vault.get(scope, "openai_api_key") == "sk-round-trip-1f2e3d"
    vault.put(scope, "openai_api_key", "sk-replaced-ü-9a8b")  # replaced in place, Unicode kept
    vault.put("mcp:3", "credentials", '{"token": "t"}')
    assert vault.get(scope, "openai_api_key") == "sk-replaced-ü-9a8b"
    assert [(i.scope, i.name) for i in vault.list()] == [
        ("collection:docs", "openai_api_key"),
        ("mcp:3", "credentials"),
    ]
    assert [i.name for i in vault.list("mcp:3")] == ["credentials"]
    assert "sk-" not in str([i.model_dump() for i in vault.list()])
    assert vault.find("mcp:3", "absent") is None
    with pytest.raises(NotFound):
        vault.get("mcp:3", "absent")
    vault.delete("mcp:3", "credentials")
    with pytest.raises(NotFound):
        vault.delete("mcp:3", "credentials")
    assert vault.delete_scope(scope) == 1
    assert vault.list() == []
    actions = audit_actions(db)
    assert actions == [
        ("secret.set", "collection:docs/openai_api_key"),
        ("secret.set", "collection:docs/openai_api_key"),
        ("secret.set", "mcp:3/credentials"),
        ("secret.delete", "mcp:3/credentials"),
        ("secret.delete", "collection:docs/*"),
    ]


def test_each_write_uses_a_fresh_nonce(db: Database) -> None:
    vault = vault_for(db, OLD_KEY)
    seen = set()
    for _ in range(3):
        vault.put("s", "n", "the-same-value")
        with db.read() as s:
            row = s.execute(select(EncryptedSecret)).scalar_one()
            seen.add((bytes(row.nonce), bytes(row.ciphertext)))
    assert len(seen) == 3


def test_a_row_moved_to_another_scope_or_name_is_refused(db: Database) -> None:
    """Swapping ciphertexts between rows (an attacker with write access to the table) must not hand one
    owner's credential to another: the associated data binds each ciphertext to its (scope, name)."""
    vault = vault_for(db, OLD_KEY)
    vault.put("collection:a", "openai_api_key", "sk-of-collection-a")
    vault.put("collection:b", "openai_api_key", "sk-of-collection-b")

    def swap(s):  # type: ignore[no-untyped-def]
        a, b = s.execute(select(EncryptedSecret).order_by(EncryptedSecret.scope)).scalars().all()
        a_sealed, b_sealed = (a.nonce, a.ciphertext), (b.nonce, b.ciphertext)
        a.nonce, a.ciphertext = b_sealed
        b.nonce, b.ciphertext = a_sealed

    db.write(swap)
    for scope in ("collection:a", "collection:b"):
        with pytest.raises(OperationFailed, match="integrity check"):
            vault.get(scope, "openai_api_key")
    db.write(lambda s: s.execute(update(EncryptedSecret).values(name="renamed")))
    with pytest.raises(OperationFailed, match="integrity check"):
        vault.get("collection:a", "renamed")


def test_a_row_under_an_unknown_key_names_both_settings(db: Database) -> None:
    vault_for(db, OTHER_KEY).put("mcp:1", "token", "sealed-by-a-forgotten-key")
    vault = vault_for(db, NEW_KEY, OLD_KEY)
    with pytest.raises(ConfigError) as caught:
        vault.get("mcp:1", "token")
    message = caught.value.message
    assert "ENCRYPTION_KEY" in message and "ENCRYPTION_KEY_PREVIOUS" in message and key_id_of(OTHER_KEY) in message
    report = vault.rotate()  # not lost, not touched: named in the report
    assert report.unreadable == ["mcp:1/token"] and report.rotated == 0 and not report.complete
    assert vault_for(db, OTHER_KEY).get("mcp:1", "token") == "sealed-by-a-forgotten-key"


def test_rotation_resumes_after_a_crash_and_reads_both_keys_meanwhile(db: Database) -> None:
    old = vault_for(db, OLD_KEY)
    values = {f"name-{i:02d}": f"value-{i:02d}-{os.urandom(4).hex()}" for i in range(25)}
    for name, value in values.items():
        old.put("collection:docs", name, value)

    rotating = vault_for(db, NEW_KEY, OLD_KEY)
    rotating.put("collection:docs", "written-meanwhile", "under-the-new-key")

    class Crash(Exception):
        pass

    def crash_after_two_batches(done: int) -> None:
        if done >= 10:
            raise Crash

    with pytest.raises(Crash):
        rotating.rotate(batch_size=5, after_batch=crash_after_two_batches)
    with db.read() as s:
        under = [r.key_id for r in s.execute(select(EncryptedSecret)).scalars()]
    assert under.count(key_id_of(NEW_KEY)) == 11 and under.count(key_id_of(OLD_KEY)) == 15
    # Halfway, every value reads under the pair of keys.
    assert all(rotating.get("collection:docs", n) == v for n, v in values.items())

    report = rotating.rotate(batch_size=5)
    assert (report.rotated, report.already_current, report.batches) == (15, 11, 3)
    assert report.complete and report.previous_key_id == key_id_of(OLD_KEY)
    again = rotating.rotate(batch_size=5)
    assert (again.rotated, again.already_current, again.batches) == (0, 26, 0)

    new_only = vault_for(db, NEW_KEY)  # ENCRYPTION_KEY_PREVIOUS removed: everything still reads
    assert all(new_only.get("collection:docs", n) == v for n, v in values.items())
    assert {i.key_id for i in new_only.list()} == {key_id_of(NEW_KEY)}
    rotations = [a for a in audit_actions(db) if a[0] == "secrets.rotate"]
    assert len(rotations) == 2 + 3 + 1  # one per committed batch, and one for the run with nothing to do


@pytest.mark.parametrize(
    ("scope", "name", "value", "problem"),
    [
        ("", "n", "v", "scope must not be empty"),
        ("s", " ", "v", "name must not be empty"),
        ("s" * 129, "n", "v", "at most 128 characters"),
        ("s", "n\x00", "v", "printable"),
        ("s", "line\nbreak", "v", "printable"),
        (" s", "n", "v", "surrounding spaces"),
        ("s", "n", "", "must not be empty"),
        ("s", "n", "x" * (MAX_VALUE_BYTES + 1), f"at most {MAX_VALUE_BYTES} bytes"),
        ("s", "n", "\udcff", "valid Unicode"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    db: Database, scope: str, name: str, value: str, problem: str
) -> None:
    vault = vault_for(db, OLD_KEY)
    vault.put("kept", "n", "kept-value")
    with pytest.raises(InvalidInput, match=problem):
        vault.put(scope, name, value)
    assert [(i.scope, i.name) for i in vault.list()] == [("kept", "n")]
    vault.put("s", "n", "x" * MAX_VALUE_BYTES)  # the limit itself is allowed


def test_the_key_ring_ignores_a_previous_key_equal_to_the_current_one() -> None:
    ring = KeyRing.of(NEW_KEY, NEW_KEY)
    assert ring.previous is None and ring.for_id(key_id_of(NEW_KEY)) is ring.current


def test_without_a_configured_key_the_generated_one_is_used_and_kept(db: Database) -> None:
    """The local profile: ENCRYPTION_KEY unset, a key is made once in <data dir>/secrets/ (0600) and reused."""
    vault = SecretVault(db.settings, db, AuditTrail(db))
    vault.put("s", "n", "with-a-generated-key")
    path = secrets_dir(db.settings) / "encryption_key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert SecretVault(db.settings, db, AuditTrail(db)).get("s", "n") == "with-a-generated-key"


def test_the_store_offers_the_vault(store) -> None:  # type: ignore[no-untyped-def]
    store.secrets.put("collection:docs", "openai_api_key", "sk-through-the-facade")
    assert store.secrets.get("collection:docs", "openai_api_key") == "sk-through-the-facade"


# -- no plaintext at rest ----------------------------------------------------------------------------------

PLAINTEXTS = ["sk-at-rest-0c1d2e3f4a5b6c7d", "mcp-password-at-rest-8e9f"]


def encodings(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")]


def assert_absent(blob: bytes, where: str) -> None:
    for value in PLAINTEXTS:
        for encoded in encodings(value):
            assert encoded not in blob, f"{value!r} found in {where} as {encoded!r}"


def test_no_secret_value_is_in_the_database_files_or_a_dump(db: Database, tmp_path: Path) -> None:
    vault = vault_for(db, NEW_KEY, OLD_KEY)
    vault_for(db, OLD_KEY).put("mcp:7", "password", PLAINTEXTS[1])
    vault.put("collection:docs", "openai_api_key", PLAINTEXTS[0])
    vault.rotate()
    vault.put("collection:docs", "openai_api_key", PLAINTEXTS[0])  # the old ciphertext is overwritten
    assert [vault.get("collection:docs", "openai_api_key"), vault.get("mcp:7", "password")] == PLAINTEXTS
    if db.is_sqlite:
        db.dispose()  # checkpoint the WAL into the file; the -wal and -shm files are read too, if left
        files = [p for p in db.settings.data_dir.rglob("*") if p.is_file() and "ragstore.db" in p.name]
        assert files
        for path in files:
            assert_absent(path.read_bytes(), str(path))
        return
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    dump = dump_schema(db.settings.sqlalchemy_url)
    assert b"encrypted_secrets" in dump
    assert_absent(dump, "pg_dump")


def test_concurrent_first_writes_of_one_name_both_succeed(db: Database) -> None:
    """Two processes storing the same new secret at once: one value wins, neither caller gets an error."""
    import threading

    vault = vault_for(db, OLD_KEY)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def write(value: str) -> None:
        barrier.wait()
        try:
            vault.put("mcp:9", "token", value)
        except BaseException as exc:  # collected: the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"value-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert vault.get("mcp:9", "token") in {f"value-{i}" for i in range(4)}
    assert len(vault.list()) == 1
