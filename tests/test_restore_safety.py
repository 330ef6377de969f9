"""Restore and verify touch only what they own: forged manifests, decompression bombs and hostile targets are
refused with a clear error, and nothing is written (or removed) outside the restore's own folder."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from ragstore.backup import BackupDamaged
from ragstore.backup.frames import CODECS, HEADER, MAGIC, FrameCodec
from ragstore.config import Settings
from ragstore.errors import InvalidInput, NotFound
from ragstore.service import RagStore, restore_backup

from backup_helpers import sqlite_settings

GIB = 1024 * 1024 * 1024


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, local_embedder: Any) -> tuple[Settings, str]:
    """A small SQLite store with one full backup in an unencrypted repository (built once per module)."""
    base = tmp_path_factory.mktemp("restore-safety")
    cfg = sqlite_settings(base)
    with RagStore.open(cfg, embedder=local_embedder) as store:
        store.collections.create("docs")
        store.documents.add_text("docs", "A restore writes only into its own folder.", title="one")
        store.documents.add_text("docs", "A forged manifest must not escape it.", title="two")
        store.index.wait()
        summary = store.backups.create("full")
    assert summary is not None
    return cfg, summary.id


@pytest.fixture
def cfg(made: tuple[Settings, str], tmp_path: Path) -> Settings:
    """The module's store with a private copy of its repository (tests forge objects in it)."""
    base, _ = made
    repo = tmp_path / "repo"
    shutil.copytree(base.backup_location, repo)
    return base.model_copy(update={"backup_repository": str(repo), "restore_root": tmp_path / "restores"})


@pytest.fixture
def backup_id(made: tuple[Settings, str]) -> str:
    return made[1]


def edit_manifest(cfg: Settings, backup_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite a manifest as someone with write access to an unencrypted repository can: checksum recomputed."""
    name = f"manifests/{backup_id}"
    path = Path(cfg.backup_location) / name
    codec = FrameCodec("zstd")
    body = json.loads(codec.decode(name, path.read_bytes(), where="test", max_size=1 << 26))
    change(body)
    path.write_bytes(codec.encode(name, json.dumps(body).encode()))


def bomb_frame(codec: str, size: int) -> bytes:
    """An unencrypted frame whose body (checksum correct) decompresses to `size` zero bytes, made in pieces."""
    zero = bytes(1 << 20)
    if codec == "zstd":
        packer: Any = zstandard.ZstdCompressor(level=1).compressobj()
    else:
        packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    body = b"".join(packer.compress(zero) for _ in range(size // len(zero))) + packer.flush()
    return HEADER.pack(MAGIC, CODECS[codec], 0, hashlib.sha256(body).digest()) + body


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("how", ["verify", "restore"])
def test_a_forged_manifest_path_is_refused_before_anything_is_written(
    cfg: Settings, backup_id: str, tmp_path: Path, local_embedder: Any, how: str
) -> None:
    def escape(body: dict[str, Any]) -> None:
        body["files"][0]["path"] = "../../../x/evil.db"

    edit_manifest(cfg, backup_id, escape)
    if how == "verify":
        with RagStore.open(cfg, embedder=local_embedder) as store, pytest.raises(BackupDamaged, match="outside"):
            store.backups.verify(backup_id)
    else:
        with pytest.raises(BackupDamaged, match="outside the restored folder"):
            restore_backup(cfg, backup_id, to=str(tmp_path / "restores" / "copy"), confine=True)
        assert not (tmp_path / "restores" / "copy").exists()
    assert not list(tmp_path.rglob("evil.db")) and not list(cfg.data_dir.parent.rglob("evil.db"))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "field,value",
    [
        ("path", "/etc/evil.db"),
        ("path", "index/../../evil.db"),
        ("path", "index/a\x00b"),
        ("map", "../../../etc/passwd"),
        ("blocks", ["../" * 5 + "etc/passwd"]),
    ],
)
def test_every_manifest_name_is_checked(cfg: Settings, backup_id: str, tmp_path: Path, field: str, value: Any) -> None:
    edit_manifest(cfg, backup_id, lambda body: body["files"][0].__setitem__(field, value))
    with pytest.raises(BackupDamaged, match="altered"):
        restore_backup(cfg, backup_id, to=str(tmp_path / "copy"))
    assert not (tmp_path / "copy").exists()


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_a_decompression_bomb_block_is_a_damaged_backup_not_memory(
    cfg: Settings, backup_id: str, tmp_path: Path, local_embedder: Any, codec: str
) -> None:
    blocks = sorted(p for p in (Path(cfg.backup_location) / "blocks").rglob("*") if p.is_file())
    for block in blocks:
        block.write_bytes(bomb_frame(codec, GIB))  # each a few hundred KiB, 1 GiB decompressed
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with (
        RagStore.open(cfg, embedder=local_embedder) as store,
        pytest.raises(BackupDamaged, match="decompresses past its declared size"),
    ):
        store.backups.verify(backup_id)
    with pytest.raises(BackupDamaged, match="decompresses past its declared size"):
        restore_backup(cfg, backup_id, to="copy", confine=True)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    assert grown < 200 * 1024 * 1024, f"peak RSS grew by {grown / 1e6:.0f} MB"
    assert not (cfg.restore_root_dir / "copy").exists()


def test_malformed_backup_ids_are_refused_not_resolved(cfg: Settings, tmp_path: Path) -> None:
    for bad in ("../../etc/passwd", "..", "a/b", "x\x00", "", "-x", "a" * 65):
        with pytest.raises(InvalidInput, match="not a backup id"):
            restore_backup(cfg, bad, to=str(tmp_path / "copy"))
    with pytest.raises(NotFound):
        restore_backup(cfg, "20200101T000000000000Z-full-abcdef", to=str(tmp_path / "copy"))
    assert not (tmp_path / "copy").exists()


def test_api_targets_stay_below_the_restore_root(cfg: Settings, backup_id: str, tmp_path: Path) -> None:
    root = cfg.restore_root_dir
    for to in (str(tmp_path / "elsewhere"), "../elsewhere", "/tmp", str(cfg.data_dir), str(root)):
        with pytest.raises(InvalidInput, match=r"restore root|'\.\.'|live store"):
            restore_backup(cfg, backup_id, to=to, confine=True)
    assert not (tmp_path / "elsewhere").exists()
    # Without RAGSTORE_RESTORE_ROOT, the root is <data dir>/restores and the live store stays out of reach.
    default = cfg.model_copy(update={"restore_root": None})
    for to in (str(cfg.data_dir / "index"), str(cfg.data_dir)):
        with pytest.raises(InvalidInput, match=r"<data dir>/restores"):
            restore_backup(default, backup_id, to=to, confine=True)
    # A relative path is taken from the root, never from the server's working directory.
    report = restore_backup(cfg, backup_id, to="nested/copy", confine=True)
    assert Path(report.data_dir) == root / "nested" / "copy"
    for folder in (root / "nested", root / "nested" / "copy", root / "nested" / "copy" / "index"):
        assert folder.stat().st_mode & 0o777 == 0o700
    for file in (root / "nested" / "copy").rglob("*"):
        if file.is_file():
            assert file.stat().st_mode & 0o777 == 0o600, file


@pytest.mark.parametrize("confine", [True, False])
def test_hostile_targets_are_clear_4xx_and_leave_nothing(
    cfg: Settings, backup_id: str, tmp_path: Path, confine: bool
) -> None:
    root = cfg.restore_root_dir
    base = root if confine else tmp_path / "cli"
    base.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (base / "link").symlink_to(outside, target_is_directory=True)
    (base / "a-file").write_text("not a folder")
    (base / "full").mkdir()
    (base / "full" / "keep.txt").write_text("mine")
    cases = {
        str(base / "link" / "copy"): "symlink",
        str(base / "link"): "symlink",
        str(base / "a-file"): "is a file",
        str(base / "a-file" / "copy"): "file on its way",
        str(base / "full"): "not empty",
        str(base / "nul\x00copy"): "NUL",
        str(base / ("x" * 300)): "too long",
        str(base / "/".join(["y" * 200] * 25)): "too long",
    }
    before = files_under(tmp_path)
    for to, problem in cases.items():
        with pytest.raises(InvalidInput, match=problem):
            restore_backup(cfg, backup_id, to=to, confine=confine)
    assert files_under(tmp_path) == before  # no partial folder, nothing followed through the link
    assert not list(outside.iterdir()) and (base / "full" / "keep.txt").read_text() == "mine"


def test_an_unwritable_target_is_a_clear_4xx(cfg: Settings, backup_id: str) -> None:
    # The tests run as root, which may write anywhere a mode allows: /sys refuses even root.
    with pytest.raises(InvalidInput, match="not writable"):
        restore_backup(cfg, backup_id, to="/sys/ragstore-restore-test/copy")
    unwritable = cfg.model_copy(update={"restore_root": Path("/sys/ragstore-restore-test")})
    with pytest.raises(InvalidInput, match="not writable"):
        restore_backup(unwritable, backup_id, to="copy", confine=True)
    assert not os.path.exists("/sys/ragstore-restore-test")


def test_the_cli_may_restore_anywhere_new(cfg: Settings, backup_id: str, tmp_path: Path) -> None:
    report = restore_backup(cfg, backup_id, to=str(tmp_path / "anywhere" / "copy"))
    assert report.consistency.problems == 0 and (tmp_path / "anywhere" / "copy" / "ragstore.db").is_file()
    assert (tmp_path / "anywhere" / "copy" / "ragstore.db").stat().st_mode & 0o777 == 0o600


def test_postgresql_targets_on_the_configured_server_with_quoted_names(
    tmp_path: Path, local_embedder: Any, postgres_admin: Any
) -> None:
    from sqlalchemy.engine import make_url

    from backup_helpers import backup_settings

    live = make_url(postgres_admin.created_database_url()).set(password="sekrit-pw")  # trust auth ignores it
    pg = backup_settings(
        lambda **kw: Settings(**kw),
        tmp_path,
        data_dir=tmp_path / "pgdata",
        database_url=live.render_as_string(hide_password=False),
    )
    with RagStore.open(pg, embedder=local_embedder) as store:
        store.collections.create("docs")
        store.documents.add_text("docs", "A database name is an identifier, never spliced SQL.", title="pg")
        store.index.wait()
        summary = store.backups.create("full")
    assert summary is not None
    # Through the API only the configured server: another host (or port, or user) is refused before connecting.
    for other in (live.set(host="127.0.0.2"), live.set(port=5433), live.set(username="someone")):
        to = other.set(database="ragstore_t_elsewhere").render_as_string(hide_password=False)
        with pytest.raises(InvalidInput, match="configured PostgreSQL server") as caught:
            restore_backup(pg, summary.id, to=to, confine=True)
        assert "sekrit-pw" not in str(caught.value)
    # A '"' in the name cannot break out of the statement: the database is created under exactly that name.
    import psycopg
    from psycopg import sql

    name = f"rs_q_{os.urandom(4).hex()}" + '"; DROP DATABASE postgres; --'
    to = live.set(database=name).render_as_string(hide_password=False)
    admin = live.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        report = restore_backup(pg, summary.id, to=to, confine=True)
        assert report.consistency.problems == 0 and "sekrit-pw" not in report.model_dump_json()
        with psycopg.connect(admin, autocommit=True) as conn:
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert name in names and "postgres" in names
    finally:  # dropped here, quoted (the shared fixture's cleanup splices names into its SQL)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_pg_tools_get_the_password_through_the_environment_not_the_command_line() -> None:
    """`ps` shows every user a command line; pg_dump and pg_restore read PGPASSWORD from their environment."""
    from ragstore.backup.snapshot import libpq_command

    dbname, env = libpq_command("postgresql+psycopg://ragstore:s3cret-pw@db.example:5433/store")
    assert dbname == "--dbname=postgresql://ragstore@db.example:5433/store"
    assert env["PGPASSWORD"] == "s3cret-pw"
    no_password, env = libpq_command("postgresql+psycopg://postgres@127.0.0.1/test")
    assert "PGPASSWORD" not in env or env["PGPASSWORD"] == os.environ.get("PGPASSWORD")
    assert no_password == "--dbname=postgresql://postgres@127.0.0.1/test"
