"""Vector indexes: derived data, rebuilt from SQL at any time."""

from ragstore.vectors.base import CollectionSpec, VectorHit, VectorIndex
from ragstore.vectors.factory import create_vector_index

__all__ = ["CollectionSpec", "VectorHit", "VectorIndex", "create_vector_index"]
