"""`document_facets`: every scalar metadata value of a document, indexed (db/facets.py writes and reads it)."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ragstore.db.models import Base, BigId

__all__ = ["DocumentFacet"]


class DocumentFacet(Base):
    """One scalar metadata value of a document, indexed: what a filter asks SQL without reading JSON.

    An accelerator only (db/facets.py): a filter's facet lookup selects a superset of the documents that
    pass, and the exact JSON condition decides. `kind` is s(tring), n(umber), b(oolean) or x (a list, an
    object or null: present, for `$exists`); strings keep their first 64 characters, numbers a double."""

    __tablename__ = "document_facets"
    __table_args__ = (
        Index("ix_document_facets_number", "collection_id", "key", "kind", "num", "document_id"),
        Index("ix_document_facets_text", "collection_id", "key", "kind", "text", "document_id"),
        Index("ix_document_facets_document", "document_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(1))
    num: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    text: Mapped[str | None] = mapped_column(
        String(64, collation="C").with_variant(String(64), "sqlite"), nullable=True
    )
