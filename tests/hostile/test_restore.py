"""Hostile restores and verifies against a real server: forged manifests, decompression bombs, targets outside
the restore root, through symlinks, files, NUL, too long; each a documented 4xx within a time bound, nothing
written outside, the live store untouched (row counts, a clean check) and search still answering."""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import zstandard

from ragstore.backup.frames import CODECS, HEADER, MAGIC, FrameCodec

from live import LiveServer

SECONDS = 30.0  # each refusal well within this (a real restore of the 3-document store takes a few seconds)
RSS_GROWTH = 300 * 1024 * 1024  # a 1 GiB decompression bomb must not reach memory


@pytest.fixture(scope="module")
def backup_id(live_server: LiveServer) -> str:
    with live_server.client() as client:
        assert client.post("/admin/backup/trigger", json={"kind": "full"}).status_code == 202
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = client.get("/admin/backup/status").json()
            if status["running_here"] is None and status["latest"] is not None:
                return str(status["latest"]["id"])
            time.sleep(0.2)
    raise AssertionError("the backup did not finish")


def refused(live_server: LiveServer, path: str, body: dict[str, Any], status: int, words: str) -> dict[str, Any]:
    started = time.monotonic()
    with live_server.client() as client:
        answer = client.post(path, json=body)
    took = time.monotonic() - started
    assert answer.status_code == status, answer.text
    assert took < SECONDS, f"{path} took {took:.1f} s"
    error = answer.json()["error"]
    assert words in error["message"], error
    assert str(live_server.data_dir) not in answer.text and str(live_server.data_dir.parent) not in answer.text
    return dict(error)


def repository(live_server: LiveServer) -> Path:
    return live_server.data_dir / "backups"


def test_hostile_targets_are_refused(live_server: LiveServer, backup_id: str, unchanged: None, tmp_path: Path) -> None:
    restores = live_server.data_dir / "restores"
    restores.mkdir(exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (restores / "link").symlink_to(outside, target_is_directory=True)
    (restores / "a-file").write_text("not a folder")
    before = {p for p in live_server.data_dir.parent.rglob("*")}
    cases = [
        (str(outside / "copy"), "<data dir>/restores"),
        ("../escape", "'..'"),
        (str(live_server.data_dir / "index"), "<data dir>/restores"),
        (str(live_server.data_dir), "<data dir>/restores"),
        ("link/copy", "symlink"),
        ("a-file", "is a file"),
        ("a-file/copy", "file on its way"),
        ("nul\x00copy", "NUL"),
        ("x" * 300, "too long"),
        ("/".join(["y" * 200] * 19), "too long"),
        ("postgresql+psycopg://postgres@10.255.255.1:5432/elsewhere", "must be a folder"),
    ]
    for to, words in cases:
        refused(live_server, "/admin/backup/restore", {"backup_id": backup_id, "to": to}, 422, words)
    assert {p for p in live_server.data_dir.parent.rglob("*")} == before  # no partial folder anywhere
    assert not list(outside.iterdir())
    for junk in ("../../etc/passwd", "..", "a/b", "x" * 65):
        with live_server.client() as client:
            answer = client.post("/admin/backup/restore", json={"backup_id": junk, "to": "copy"})
            assert answer.status_code == 422, answer.text
            assert client.post("/admin/backup/verify", json={"backup_id": junk}).status_code == 422
    refused(
        live_server,
        "/admin/backup/restore",
        {"backup_id": "20200101T000000000000Z-full-abcdef", "to": "copy"},
        404,
        "no backup",
    )
    (restores / "link").unlink()
    (restores / "a-file").unlink()


def _swap(path: Path, data: bytes) -> bytes:
    original = path.read_bytes()
    path.write_bytes(data)
    return original


def test_a_forged_manifest_writes_nothing_outside(live_server: LiveServer, backup_id: str, unchanged: None) -> None:
    name = f"manifests/{backup_id}"
    path = repository(live_server) / name
    codec = FrameCodec("zstd")
    body = json.loads(codec.decode(name, path.read_bytes(), where="test", max_size=1 << 26))
    body["files"][0]["path"] = "../../../x/evil.db"
    original = _swap(path, codec.encode(name, json.dumps(body).encode()))
    try:
        refused(live_server, "/admin/backup/verify", {"backup_id": backup_id}, 422, "outside the restored folder")
        refused(
            live_server, "/admin/backup/restore", {"backup_id": backup_id, "to": "forged"}, 422, "outside the restored"
        )
    finally:
        path.write_bytes(original)
    top = live_server.data_dir.parent.parent
    assert not list(top.rglob("evil.db")) and not (live_server.data_dir / "restores" / "forged").exists()


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_a_decompression_bomb_is_a_4xx_not_memory(
    live_server: LiveServer, backup_id: str, unchanged: None, codec: str
) -> None:
    zero = bytes(1 << 20)
    packer: Any = (
        zstandard.ZstdCompressor(level=1).compressobj()
        if codec == "zstd"
        else zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    )
    bomb = b"".join(packer.compress(zero) for _ in range(1024)) + packer.flush()  # 1 GiB of zeros
    frame = HEADER.pack(MAGIC, CODECS[codec], 0, hashlib.sha256(bomb).digest()) + bomb
    blocks = sorted(p for p in (repository(live_server) / "blocks").rglob("*") if p.is_file())
    originals = {p: _swap(p, frame) for p in blocks}
    rss = live_server.rss_bytes()
    try:
        refused(live_server, "/admin/backup/verify", {"backup_id": backup_id}, 422, "past its declared size")
        refused(live_server, "/admin/backup/restore", {"backup_id": backup_id, "to": "bomb"}, 422, "declared size")
    finally:
        for p, data in originals.items():
            p.write_bytes(data)
    assert live_server.rss_bytes() - rss < RSS_GROWTH
    assert not (live_server.data_dir / "restores" / "bomb").exists()


def test_dr_report_and_a_good_restore_name_no_server_path(
    live_server: LiveServer, backup_id: str, unchanged: None
) -> None:
    with live_server.client(timeout=300) as client:
        dr = client.get("/admin/backup/dr")
        assert dr.status_code == 200, dr.text
        assert dr.json()["free_bytes"] is None and str(live_server.data_dir) not in dr.text
        done = client.post("/admin/backup/restore", json={"backup_id": backup_id, "to": "good"})
    assert done.status_code == 200, done.text
    assert done.json()["data_dir"] == "<data dir>/restores/good" and str(live_server.data_dir) not in done.text
    copy = live_server.data_dir / "restores" / "good"
    assert (copy / "ragstore.db").stat().st_mode & 0o777 == 0o600 and copy.stat().st_mode & 0o777 == 0o700
