"""ragstore: the data layer of a retrieval-augmented-generation service."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ragstore")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

from ragstore.config import Settings, load_settings
from ragstore.errors import (
    ConfigError,
    Conflict,
    InsufficientStorage,
    InvalidInput,
    MigrationError,
    NotFound,
    OperationFailed,
    PayloadTooLarge,
    RagstoreError,
    Unavailable,
    UnsupportedMediaType,
)
from ragstore.schemas import CollectionInfo, DocumentInfo, DocumentInput, IngestOutcome, IngestReport, SearchResponse
from ragstore.service import RagStore

__all__ = [
    "CollectionInfo",
    "ConfigError",
    "Conflict",
    "DocumentInfo",
    "DocumentInput",
    "IngestOutcome",
    "IngestReport",
    "InsufficientStorage",
    "InvalidInput",
    "MigrationError",
    "NotFound",
    "OperationFailed",
    "PayloadTooLarge",
    "RagStore",
    "RagstoreError",
    "SearchResponse",
    "Settings",
    "Unavailable",
    "UnsupportedMediaType",
    "__version__",
    "load_settings",
]
