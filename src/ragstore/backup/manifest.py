"""The manifest: everything a backup holds and everything needed to check a restore against it.

It is the last object a backup writes, and its presence is what makes a backup exist: a backup killed
before that point leaves only blocks, which nothing lists and `backup prune` removes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["BackupKind", "CollectionCounts", "FileEntry", "Manifest"]

BackupKind = Literal["full", "incremental", "snapshot"]
FORMAT = 1


class FileEntry(BaseModel):
    """One file of the store: its map (where each unit lives) and the blocks the map names."""

    path: str  # relative to the restored data directory: "ragstore.db", "index/3.usearch", "database.pgdump"
    role: Literal["database", "index"]
    size: int
    sha256: str  # SHA-256 over the SHA-256 of each unit, in order (`blocks.file_checksum`)
    blocks: list[str]  # every block holding a unit of the file, in order of first use
    map: str  # the repository object holding the unit map (maps/<backup id>/<n>)
    units: int
    new_units: int  # the units this backup stored (the rest were unchanged since the previous backup)


class CollectionCounts(BaseModel):
    name: str
    id: int
    documents: int
    chunks: int
    indexed_chunks: int
    embeddings: int
    vectors: int | None = None  # in the index files carried by the backup; None when they are not carried
    dimension: int
    embedding_model: str


class Manifest(BaseModel):
    format: int = FORMAT
    id: str
    kind: BackupKind
    parent: str | None = None  # the backup an incremental was made against
    note: str | None = None
    created_at: str  # ISO 8601, UTC: the point in time the database snapshot shows
    ragstore_version: str
    alembic_revision: str | None
    dialect: Literal["sqlite", "postgresql"]
    database_format: Literal["sqlite", "pg_dump-custom"]
    pg_schema: str | None = None  # the schema a PostgreSQL store lived in (search_path), when not public
    vector_backend: str
    index_included: bool  # whether this backup names index files (its own or its chain's full backup's)
    index_from: str | None = None  # the backup that copied the index files it names
    index_restore: str  # how the vectors come back
    store_identity: int
    collections: list[CollectionCounts] = Field(default_factory=list)
    embedding_models: list[str] = Field(default_factory=list)
    files: list[FileEntry] = Field(default_factory=list)
    block_size: int
    codec: str
    encrypted: bool
    new_blocks: list[str] = Field(default_factory=list)  # the blocks this backup wrote (others it reused)
    logical_bytes: int = 0  # the size of the files it holds
    stored_bytes: int = 0  # what it added to the repository
    timings: dict[str, float] = Field(default_factory=dict)

    def referenced_blocks(self) -> set[str]:
        return {b for f in self.files for b in f.blocks}

    def referenced_maps(self) -> set[str]:
        return {f.map for f in self.files}
