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
    """One file of the store, as the ordered list of blocks it is made of."""

    path: str  # relative to the restored data directory: "ragstore.db", "index/3.usearch", "database.pgdump"
    role: Literal["database", "index"]
    size: int
    sha256: str
    blocks: list[str]


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
    index_included: bool
    index_restore: str  # how the vectors come back: "files" or "rebuild from the embeddings table"
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
