"""Kept for imports written before the registry (`vectors/registry.py`), which now holds all of this."""

from ragstore.vectors.registry import (
    BACKENDS,
    PROCESS_LOCAL_BACKENDS,
    check_server_processes,
    create_vector_index,
    single_process_store,
)

__all__ = [
    "BACKENDS",
    "PROCESS_LOCAL_BACKENDS",
    "check_server_processes",
    "create_vector_index",
    "single_process_store",
]
