"""The relational store: models, engine and sessions."""

from ragstore.db.engine import Database
from ragstore.db.models import Base

__all__ = ["Base", "Database"]
