"""A backup repository: content-addressed blocks, one manifest per backup, and a record of each verify.

    repository.json          format, whether it is encrypted, the key check, created_at (plain JSON)
    blocks/<ab>/<digest>     the changed units of up to 1 MiB of a file: framed (compressed, encrypted,
                             checksummed), named by the digest of its plaintext
    maps/<backup id>/<n>     where each unit of the backup's n-th file lives (`unitmap.UnitMap`), framed
    manifests/<backup id>    one backup's manifest, framed the same way; written last
    verified/<backup id>     the outcome of the last `backup verify` of it (plain JSON)
    tmp/                     objects being written (an interrupted write leaves its part here)
    lock                     held by whoever backs up, verifies, restores or prunes

An incremental is a manifest, maps, and the blocks holding the units that changed since the previous
backup; its maps point at older blocks for the rest. Deleting an old backup never breaks a newer one:
prune removes only the blocks and maps that no kept manifest names.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from ragstore.backup.errors import BackupDamaged, BackupError, KeyProblem
from ragstore.backup.frames import Codec, FrameCodec
from ragstore.backup.keys import key_check
from ragstore.backup.manifest import Manifest
from ragstore.backup.storage import Storage
from ragstore.backup.targets import BACKUP_ID, check_backup_id, check_block_digest
from ragstore.backup.unitmap import UnitMap
from ragstore.errors import NotFound

__all__ = ["Repository"]

CONFIG = "repository.json"
REPO_FORMAT = 1
# The most a block's plaintext can hold: one window of file bytes plus the largest content-defined unit
# (4 x the largest RAGSTORE_BACKUP_BLOCK_KB); decompression stops there whatever a manifest claims.
MAX_BLOCK_BYTES = 1024 * 1024 + 4 * 1024 * 1024
MAX_MANIFEST_BYTES = 256 * 1024 * 1024  # about 3 million block names: a store of several terabytes
MAX_RECORD_BYTES = 1024 * 1024


class Repository:
    def __init__(self, storage: Storage, *, codec: Codec, level: int, key: bytes | None) -> None:
        self.storage = storage
        self.frames = FrameCodec(codec, level, key)
        self.encrypted = key is not None
        self._manifests: dict[str, Manifest] = {}

    @classmethod
    def open(cls, storage: Storage, *, codec: Codec, level: int, key: bytes | None, create: bool) -> Repository:
        """Open (or with `create`, initialise) a repository, refusing a key that is not its key."""
        repo = cls(storage, codec=codec, level=level, key=key)
        try:
            config = json.loads(storage.get(CONFIG))
        except FileNotFoundError:
            if not create:
                raise NotFound(f"no backup repository at {storage.location} (no backup has been made yet)") from None
            config = {
                "format": REPO_FORMAT,
                "encrypted": key is not None,
                "key_check": key_check(key) if key is not None else None,
                "created_at": datetime.now(UTC).isoformat(),
            }
            config["checksum"] = _config_checksum(config)
            storage.put(CONFIG, json.dumps(config, indent=2).encode())
            return repo
        except ValueError as exc:
            raise BackupDamaged(f"the repository's {CONFIG} at {storage.location} is not JSON ({exc})") from None
        if not isinstance(config, dict) or config.get("checksum") != _config_checksum(config):
            raise BackupDamaged(f"the repository's {CONFIG} at {storage.location} fails its checksum (altered)")
        if config.get("encrypted") and key is None:
            raise KeyProblem(f"the backups in {storage.location} are encrypted and BACKUP_ENCRYPTION_KEY is not set")
        if config.get("encrypted") and config.get("key_check") != key_check(key or b""):
            raise KeyProblem(f"BACKUP_ENCRYPTION_KEY is not the key the repository at {storage.location} was made with")
        if not config.get("encrypted") and key is not None:
            raise KeyProblem(
                f"the repository at {storage.location} was made without encryption but BACKUP_ENCRYPTION_KEY "
                "is set; use a new RAGSTORE_BACKUP_REPOSITORY for encrypted backups"
            )
        return repo

    @property
    def location(self) -> str:
        return self.storage.location

    # -- blocks ----------------------------------------------------------------------------------------------
    @staticmethod
    def block_name(digest: str) -> str:
        return f"blocks/{digest[:2]}/{digest}"

    def has_block(self, digest: str) -> bool:
        return self.storage.exists(self.block_name(digest))

    def put_block(self, digest: str, data: bytes | memoryview) -> int:
        """Store a block under its digest; returns the bytes written."""
        name = self.block_name(digest)
        frame = self.frames.encode(name, data)
        self.storage.put(name, frame)
        return len(frame)

    def get_block(self, digest: str, *, where: str, max_size: int = MAX_BLOCK_BYTES) -> bytes:
        """A block's plaintext; BackupDamaged if it would decompress past `max_size` (the manifest's bound)."""
        name = self.block_name(check_block_digest(digest, where=where))
        try:
            frame = self.storage.get(name)
        except FileNotFoundError:
            writer = self.writer_of(digest)
            by = f", written by backup {writer}" if writer else ""
            raise BackupDamaged(f"{where}: block {name} is missing{by} (the chain is broken)") from None
        return self.frames.decode(name, frame, where=where, max_size=min(max_size, MAX_BLOCK_BYTES))

    def put_object(self, name: str, data: bytes) -> int:
        frame = self.frames.encode(name, data)
        self.storage.put(name, frame)
        return len(frame)

    def load_map(self, name: str, *, where: str, max_size: int = MAX_MANIFEST_BYTES) -> UnitMap:
        """A file's unit map; `max_size` is what its declared units and blocks can take (`FileEntry`)."""
        try:
            frame = self.storage.get(name)
        except FileNotFoundError:
            raise BackupDamaged(f"{where}: its map {name} is missing (the chain is broken)") from None
        try:
            return UnitMap.from_bytes(self.frames.decode(name, frame, where=where, max_size=max_size))
        except BackupError:
            raise
        except Exception as exc:
            raise BackupDamaged(f"{where}: its map {name} cannot be read ({type(exc).__name__})") from None

    def all_maps(self) -> list[str]:
        return [name for prefix in self.storage.list("maps") for name in self.storage.list(prefix)]

    def all_blocks(self) -> list[str]:
        return [name.rsplit("/", 1)[1] for prefix in self.storage.list("blocks") for name in self.storage.list(prefix)]

    def delete_block(self, digest: str) -> int:
        return self.delete_object(self.block_name(digest))

    # -- manifests -------------------------------------------------------------------------------------------
    def save_manifest(self, manifest: Manifest) -> None:
        """Commit a backup: its blocks are made durable first, then the manifest that names them."""
        self.storage.sync()
        name = f"manifests/{manifest.id}"
        self.storage.put(name, self.frames.encode(name, manifest.model_dump_json().encode()))
        self.storage.sync()
        self._manifests[manifest.id] = manifest

    def backup_ids(self) -> list[str]:
        """Every complete backup, oldest first (ids sort by time)."""
        names = (n.rsplit("/", 1)[1] for n in self.storage.list("manifests"))
        return [n for n in names if BACKUP_ID.fullmatch(n)]  # a stray file there is no backup

    def manifest(self, backup_id: str) -> Manifest:
        """A backup's manifest; InvalidInput for a malformed id (never a path outside manifests/)."""
        check_backup_id(backup_id)
        cached = self._manifests.get(backup_id)
        if cached is not None:
            return cached
        name = f"manifests/{backup_id}"
        try:
            frame = self.storage.get(name)
        except FileNotFoundError:
            raise NotFound(f"no backup {backup_id!r} in {self.location}") from None
        where = f"backup {backup_id}"
        body = self.frames.decode(name, frame, where=where, max_size=MAX_MANIFEST_BYTES)
        try:
            manifest = Manifest.model_validate_json(body)
        except ValueError as exc:
            raise BackupDamaged(f"{where}: its manifest cannot be read ({exc})") from None
        if manifest.id != backup_id:
            raise BackupDamaged(f"{where}: its manifest names another backup ({manifest.id[:80]!r}; altered)")
        self._manifests[backup_id] = manifest
        return manifest

    def manifests(self) -> list[Manifest]:
        return [self.manifest(i) for i in self.backup_ids()]

    def latest(self) -> Manifest | None:
        ids = self.backup_ids()
        return self.manifest(ids[-1]) if ids else None

    def delete_backup(self, backup_id: str) -> None:
        """Forget a backup (its maps and blocks stay until prune finds nothing else names them)."""
        self.storage.delete(f"manifests/{backup_id}")
        self.storage.delete(f"verified/{backup_id}")
        self._manifests.pop(backup_id, None)

    def delete_object(self, name: str) -> int:
        try:
            size = self.storage.size(name)
        except FileNotFoundError:
            return 0
        self.storage.delete(name)
        return size

    def writer_of(self, digest: str) -> str | None:
        """Which backup first wrote a block (for error messages about a missing one)."""
        for backup_id in self.backup_ids():
            try:
                if digest in self.manifest(backup_id).new_blocks:
                    return backup_id
            except BackupError:
                continue
        return None

    def missing_blocks(self, manifest: Manifest) -> list[str]:
        """Blocks and maps the backup needs that the repository does not hold: the chain-completeness check."""
        maps = sorted(f.map for f in manifest.files if not self.storage.exists(f.map))
        return maps + sorted(d for d in manifest.referenced_blocks() if not self.has_block(d))

    # -- verification records --------------------------------------------------------------------------------
    def record_verified(self, backup_id: str, record: dict[str, Any]) -> None:
        name = f"verified/{backup_id}"
        self.storage.put(name, self.frames.encode(name, json.dumps(record).encode()))

    def verified(self, backup_id: str) -> dict[str, Any] | None:
        """The last verify's record; a damaged record counts as a failed verify (it proves nothing)."""
        name = f"verified/{backup_id}"
        try:
            frame = self.storage.get(name)
        except FileNotFoundError:
            return None
        try:
            body = self.frames.decode(name, frame, where=f"backup {backup_id}", max_size=MAX_RECORD_BYTES)
            return dict(json.loads(body))
        except (BackupError, ValueError) as exc:
            message = exc.message if isinstance(exc, BackupError) else str(exc)
            return {"ok": False, "error": f"the verify record is unreadable: {message}"}


def _config_checksum(config: dict[str, Any]) -> str:
    body = {k: v for k, v in config.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
