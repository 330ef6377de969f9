"""Embeddings: the Embedder protocol and its backends."""

from ragstore.embeddings.base import Embedder, UsageRecord
from ragstore.embeddings.factory import create_embedder

__all__ = ["Embedder", "UsageRecord", "create_embedder"]
