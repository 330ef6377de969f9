"""ragstore: the data layer of a retrieval-augmented-generation service.

The public names are imported on first use (PEP 562), not with the package: `import ragstore.cli` or
`ragstore.config` must not pay for the facade and everything it wires (`ragstore --help` would take a
second). `from ragstore import RagStore` works as before.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from ragstore.native_libs import share_cxx_runtime

share_cxx_runtime()  # before usearch or onnxruntime can be loaded: native_libs.py says why

try:
    __version__ = version("ragstore")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
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
    from ragstore.schemas import (
        CollectionInfo,
        DocumentInfo,
        DocumentInput,
        IngestOutcome,
        IngestReport,
        SearchResponse,
    )
    from ragstore.service import RagStore

# Each public name and the module it lives in.
_EXPORTS = {
    "CollectionInfo": "ragstore.schemas",
    "ConfigError": "ragstore.errors",
    "Conflict": "ragstore.errors",
    "InsufficientStorage": "ragstore.errors",
    "DocumentInfo": "ragstore.schemas",
    "DocumentInput": "ragstore.schemas",
    "IngestOutcome": "ragstore.schemas",
    "IngestReport": "ragstore.schemas",
    "InvalidInput": "ragstore.errors",
    "MigrationError": "ragstore.errors",
    "NotFound": "ragstore.errors",
    "OperationFailed": "ragstore.errors",
    "PayloadTooLarge": "ragstore.errors",
    "RagStore": "ragstore.service",
    "RagstoreError": "ragstore.errors",
    "SearchResponse": "ragstore.schemas",
    "Settings": "ragstore.config",
    "Unavailable": "ragstore.errors",
    "UnsupportedMediaType": "ragstore.errors",
    "load_settings": "ragstore.config",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragstore' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next access is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
