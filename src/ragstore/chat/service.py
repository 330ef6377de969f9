"""`store.chat`: conversations, messages, feedback and context assembly (issue 18).

Every call acts for the principal of the call in progress (`security.context.current_call`) and sees only the
conversations `chat.access` gives it; a conversation outside that scope, or soft-deleted, is a NotFound.
The work is done by one small module per job (`conversations`, `messages`, `context`, `references`); search
and retention are their own modules (`chat.search`, `chat.retention`). This facade hands them all out so
that callers meet one `store.chat`.

Inputs are the pydantic models of `schemas.chat`; Python callers may pass the fields as keywords instead,
and a field out of bounds is an InvalidInput naming it, as the API's 422 does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ragstore.cache.layers import CacheLayers
from ragstore.chat.access import sees_everything
from ragstore.chat.context import ContextAssembler
from ragstore.chat.conversations import ConversationStore
from ragstore.chat.messages import MessageStore
from ragstore.chat.relex import MessageRelexer, Progress
from ragstore.chat.retention import ChatRetention
from ragstore.chat.search import MessageSearch
from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.errors import Forbidden, InvalidInput
from ragstore.schemas.chat import (
    ChatContext,
    ConversationCreate,
    ConversationDetail,
    ConversationInfo,
    ConversationPage,
    ConversationUpdate,
    ErasureReport,
    FeedbackInfo,
    FeedbackInput,
    MessageCreate,
    MessageInfo,
    MessageRelexReport,
    MessageRole,
    MessageSearchResult,
    PurgeReport,
)
from ragstore.security.audit import AuditTrail
from ragstore.security.context import current_call
from ragstore.text.chunking import count_tokens as estimate_tokens

__all__ = ["ChatService", "checked"]

M = TypeVar("M", bound=BaseModel)


def checked(model: type[M], given: M | None, fields: dict[str, Any]) -> M:
    """`given`, or a `model` built from `fields`; an invalid field is an InvalidInput naming it."""
    if given is not None:
        if fields:
            raise InvalidInput("pass either the request model or its fields, not both")
        return given
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(problems[:1000]) from exc


@dataclass(slots=True)
class ChatService:
    db: Database
    cache: CacheLayers
    audit_trail: AuditTrail
    searcher: MessageSearch
    retention: ChatRetention
    relexer: MessageRelexer
    clock: Clock = SYSTEM_CLOCK
    analyze: Callable[[str], Sequence[str]] = lambda text: text.split()  # wiring passes the store's analyzer
    count_tokens: Callable[[str], int] = estimate_tokens  # wiring passes chat.tokens.token_counter(embedder)
    _closed: bool = field(default=False, init=False)
    _conversations: ConversationStore = field(init=False)
    _messages: MessageStore = field(init=False)
    _context: ContextAssembler = field(init=False)

    def __post_init__(self) -> None:
        self._conversations = ConversationStore(self.db, self.audit_trail, clock=self.clock)
        self._messages = MessageStore(self.db, self.analyze, self.count_tokens, clock=self.clock)
        self._context = ContextAssembler(self.db, self.cache.sessions, self.count_tokens)

    # -- conversations (chat/conversations.py) -------------------------------------------------------------
    def create(self, spec: ConversationCreate | None = None, **fields: Any) -> ConversationInfo:
        """A new conversation, owned by the caller's user unless an admin names another (`user`)."""
        return self._conversations.create(current_call().principal, checked(ConversationCreate, spec, fields))

    def get(self, conversation_id: str) -> ConversationInfo:
        return self._conversations.get(current_call().principal, conversation_id)

    def list(
        self,
        *,
        user: int | str | None = None,
        end_user_id: str | None = None,
        is_active: bool | None = None,
        collection: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ConversationPage:
        """The conversations the caller may see, newest activity first; pass `next_cursor` for the next page."""
        return self._conversations.list(
            current_call().principal,
            user=user,
            end_user_id=end_user_id,
            is_active=is_active,
            collection=collection,
            limit=limit,
            cursor=cursor,
        )

    def update(self, conversation_id: str, change: ConversationUpdate | None = None, **fields: Any) -> ConversationInfo:
        """Change title, summary, collections, metadata, `is_active` or the active branch; `version` must be the
        one read (else Conflict, HTTP 409)."""
        return self._conversations.update(
            current_call().principal, conversation_id, checked(ConversationUpdate, change, fields)
        )

    def branch(self, conversation_id: str, message_id: int) -> ConversationInfo:
        """Switch to the branch ending at `message_id` (a message of this conversation)."""
        return self._conversations.switch_branch(current_call().principal, conversation_id, message_id)

    def delete(self, conversation_id: str) -> None:
        """Soft delete: hidden from every read at once; audited; a purge removes it for good."""
        self._conversations.delete(current_call().principal, conversation_id)

    # -- messages and feedback (chat/messages.py) ----------------------------------------------------------
    def add(self, conversation_id: str, message: MessageCreate | None = None, **fields: Any) -> MessageInfo:
        """Append a message (default parent: the active leaf); it becomes the active leaf."""
        return self._messages.add(current_call().principal, conversation_id, checked(MessageCreate, message, fields))

    def show(self, conversation_id: str, *, all_branches: bool = False, limit: int = 1000) -> ConversationDetail:
        """The conversation and the messages of its active branch, oldest first (or of every branch)."""
        return self._messages.show(current_call().principal, conversation_id, all_branches=all_branches, limit=limit)

    def feedback(self, message_id: int, spec: FeedbackInput | None = None, **fields: Any) -> FeedbackInfo:
        """Rate a message (thumbs -1/1 or stars 1..5); one rating per message and source, the last one kept."""
        return self._messages.feedback(current_call().principal, message_id, checked(FeedbackInput, spec, fields))

    # -- context (chat/context.py) -------------------------------------------------------------------------
    def context(self, conversation_id: str, budget_tokens: int, *, use_cache: bool = True) -> ChatContext:
        """The summary and the newest messages of the active branch within `budget_tokens`, every citation
        among them resolved now (current, changed, deleted); served from the session cache when unchanged."""
        return self._context.context(current_call().principal, conversation_id, budget_tokens, use_cache=use_cache)

    # -- search (chat/search.py) ---------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        k: int = 10,
        user: int | str | None = None,
        conversation_id: str | None = None,
        role: MessageRole | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> MessageSearchResult:
        """Messages matching `query` among the conversations the caller may read, best first, each with a
        highlighted passage; filters narrow it to one owner, conversation, role or time range."""
        return self.searcher.search(
            current_call().principal,
            query,
            k=k,
            user=user,
            conversation_id=conversation_id,
            role=role,
            since=since,
            until=until,
        )

    def relex(self, *, progress: Progress | None = None) -> MessageRelexReport:
        """Analyse every message's terms again with the configured analyzer (after it changed: a store does
        this itself when it opens; this is the on-demand pass). Admins and the operator only."""
        if not sees_everything(current_call().principal):
            raise Forbidden("re-analysing messages needs the admin role")
        return self.relexer.relex(progress=progress)

    def bring_terms_current(self) -> int:
        """At open: the messages analysed again because another analyzer built their terms (0 if none)."""
        return self.relexer.bring_current()

    # -- retention (chat/retention.py) ---------------------------------------------------------------------
    def purge(self, older_than: timedelta | None = None, *, dry_run: bool = False) -> PurgeReport:
        """Remove soft-deleted and expired conversations (and, with `older_than`, those idle that long)."""
        return self.retention.purge(older_than, dry_run=dry_run)

    def erase_user(self, user: int | str) -> ErasureReport:
        """Remove everything of one user; the audit log records the erasure, not the content."""
        return self.retention.erase_user(user)
