"""The loaders' result: one document's plain text, its title and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoadedDocument"]


@dataclass
class LoadedDocument:
    source_uri: str
    title: str
    mime_type: str
    text: str
    size_bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)
    encoding: str | None = None  # the text encoding a file was decoded from (documents.encoding)
    source_hash: str | None = None  # SHA-256 of the file's raw bytes (documents.source_hash): what sync compares
    # Chunks the format itself decided (a CSV's row groups, each with the header row), used by the ingestor
    # instead of cutting `text` by size: a table row must not be split from the header that names its columns.
    chunks: list[str] | None = None
