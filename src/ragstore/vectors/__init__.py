"""Vector indexes: derived data, rebuilt from SQL at any time."""

from ragstore.vectors.base import CollectionSpec, VectorHit, VectorIndex
from ragstore.vectors.registry import BackendSpec, backend_spec, create_vector_index

__all__ = ["BackendSpec", "CollectionSpec", "VectorHit", "VectorIndex", "backend_spec", "create_vector_index"]
