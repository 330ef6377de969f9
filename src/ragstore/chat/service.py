"""`store.chat`: conversations, messages, feedback and context assembly (issue 18).

Every call acts for the principal of the call in progress (`security.context.current_call`) and sees only the
conversations `chat.access` gives it; a conversation outside that scope, or soft-deleted, is a NotFound.
Search and retention are their own modules (`chat.search`, `chat.retention`); this facade hands them out so
that callers meet one `store.chat`.

SKELETON: the foundation commit fixes the shape; the conversation work fills it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ragstore.cache.layers import CacheLayers
from ragstore.chat.retention import ChatRetention
from ragstore.chat.search import MessageSearch
from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.schemas.chat import ErasureReport, MessageSearchResult, PurgeReport
from ragstore.security.audit import AuditTrail
from ragstore.security.context import current_call

__all__ = ["ChatService"]


@dataclass(slots=True)
class ChatService:
    db: Database
    cache: CacheLayers
    audit_trail: AuditTrail
    searcher: MessageSearch
    retention: ChatRetention
    clock: Clock = SYSTEM_CLOCK
    _closed: bool = field(default=False, init=False)

    # -- search (chat/search.py) ---------------------------------------------------------------------------
    def search(self, query: str, **filters: object) -> MessageSearchResult:
        """Messages matching `query` among the conversations the caller may read, best first."""
        return self.searcher.search(current_call().principal, query, **filters)  # type: ignore[arg-type]

    # -- retention (chat/retention.py) ---------------------------------------------------------------------
    def purge(self, older_than: timedelta | None = None, *, dry_run: bool = False) -> PurgeReport:
        """Remove soft-deleted and expired conversations (and, with `older_than`, those idle that long)."""
        return self.retention.purge(older_than, dry_run=dry_run)

    def erase_user(self, user: int | str) -> ErasureReport:
        """Remove everything of one user; the audit log records the erasure, not the content."""
        return self.retention.erase_user(user)
