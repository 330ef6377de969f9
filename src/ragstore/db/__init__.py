"""The relational store: models, engine and sessions."""

from ragstore.db import (
    chat_models,  # noqa: F401  (registers the chat tables on Base.metadata)
    facet_models,  # noqa: F401  (registers document_facets)
    health_models,  # noqa: F401  (registers system_health)
    index_models,  # noqa: F401  (registers index_tuning)
    record_models,  # noqa: F401  (registers the application records' tables, derived from record_types)
    security_models,  # noqa: F401  (registers the security tables on Base.metadata)
)
from ragstore.db.engine import Database
from ragstore.db.models import Base

__all__ = ["Base", "Database"]
