"""`client.chat`: conversations, messages, feedback, context and message search, as `store.chat`.

The server acts for the client's key (or token): it sees the conversations that principal may see, as the
facade sees those of the call in progress. `relex` and `erase_user` are operator tasks with no route
(`LocalOnly`); `iter` follows the listing's cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

from ragstore.client import chat_calls as calls
from ragstore.client.errors import LocalOnly
from ragstore.client.http import AsyncHttp, SyncHttp
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

__all__ = ["AsyncChat", "Chat"]


def _operator_only(what: str) -> LocalOnly:
    return LocalOnly(f"chat.{what} is an operator's task with no HTTP route: it needs a local store")


class Chat:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def create(self, spec: ConversationCreate | None = None, **fields: Any) -> ConversationInfo:
        return self._http.run(calls.create(calls.checked(ConversationCreate, spec, fields)))

    def get(self, conversation_id: str) -> ConversationInfo:
        return self._http.run(calls.get(conversation_id))

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
        return self._http.run(calls.listing(user, end_user_id, is_active, collection, limit, cursor))

    def iter(
        self,
        *,
        user: int | str | None = None,
        end_user_id: str | None = None,
        is_active: bool | None = None,
        collection: str | None = None,
        page_size: int = 50,
    ) -> Iterator[ConversationInfo]:
        """Every conversation the caller may see, newest activity first, following `next_cursor`."""
        cursor: str | None = None
        while True:
            page = self._http.run(calls.listing(user, end_user_id, is_active, collection, page_size, cursor))
            yield from page.conversations
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def update(self, conversation_id: str, change: ConversationUpdate | None = None, **fields: Any) -> ConversationInfo:
        return self._http.run(calls.update(conversation_id, calls.checked(ConversationUpdate, change, fields)))

    def branch(self, conversation_id: str, message_id: int) -> ConversationInfo:
        return self._http.run(calls.branch(conversation_id, message_id))

    def delete(self, conversation_id: str) -> None:
        self._http.run(calls.delete(conversation_id))

    def add(self, conversation_id: str, message: MessageCreate | None = None, **fields: Any) -> MessageInfo:
        return self._http.run(calls.add(conversation_id, calls.checked(MessageCreate, message, fields)))

    def show(self, conversation_id: str, *, all_branches: bool = False, limit: int = 1000) -> ConversationDetail:
        return self._http.run(calls.show(conversation_id, all_branches, limit))

    def feedback(self, message_id: int, spec: FeedbackInput | None = None, **fields: Any) -> FeedbackInfo:
        return self._http.run(calls.feedback(message_id, calls.checked(FeedbackInput, spec, fields)))

    def context(self, conversation_id: str, budget_tokens: int, *, use_cache: bool = True) -> ChatContext:
        """`use_cache` is the server's to decide over HTTP (it serves from its session cache when unchanged)."""
        return self._http.run(calls.context(conversation_id, budget_tokens))

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
        return self._http.run(calls.search(query, k, user, conversation_id, role, since, until))

    def purge(self, older_than: timedelta | None = None, *, dry_run: bool = False) -> PurgeReport:
        return self._http.run(calls.purge(older_than, dry_run))

    def relex(self, **_: Any) -> MessageRelexReport:
        raise _operator_only("relex")

    def erase_user(self, user: int | str) -> ErasureReport:
        raise _operator_only("erase_user")


class AsyncChat:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def create(self, spec: ConversationCreate | None = None, **fields: Any) -> ConversationInfo:
        return await self._http.run(calls.create(calls.checked(ConversationCreate, spec, fields)))

    async def get(self, conversation_id: str) -> ConversationInfo:
        return await self._http.run(calls.get(conversation_id))

    async def list(
        self,
        *,
        user: int | str | None = None,
        end_user_id: str | None = None,
        is_active: bool | None = None,
        collection: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ConversationPage:
        return await self._http.run(calls.listing(user, end_user_id, is_active, collection, limit, cursor))

    async def iter(
        self,
        *,
        user: int | str | None = None,
        end_user_id: str | None = None,
        is_active: bool | None = None,
        collection: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[ConversationInfo]:
        cursor: str | None = None
        while True:
            page = await self._http.run(calls.listing(user, end_user_id, is_active, collection, page_size, cursor))
            for conversation in page.conversations:
                yield conversation
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def update(
        self, conversation_id: str, change: ConversationUpdate | None = None, **fields: Any
    ) -> ConversationInfo:
        return await self._http.run(calls.update(conversation_id, calls.checked(ConversationUpdate, change, fields)))

    async def branch(self, conversation_id: str, message_id: int) -> ConversationInfo:
        return await self._http.run(calls.branch(conversation_id, message_id))

    async def delete(self, conversation_id: str) -> None:
        await self._http.run(calls.delete(conversation_id))

    async def add(self, conversation_id: str, message: MessageCreate | None = None, **fields: Any) -> MessageInfo:
        return await self._http.run(calls.add(conversation_id, calls.checked(MessageCreate, message, fields)))

    async def show(self, conversation_id: str, *, all_branches: bool = False, limit: int = 1000) -> ConversationDetail:
        return await self._http.run(calls.show(conversation_id, all_branches, limit))

    async def feedback(self, message_id: int, spec: FeedbackInput | None = None, **fields: Any) -> FeedbackInfo:
        return await self._http.run(calls.feedback(message_id, calls.checked(FeedbackInput, spec, fields)))

    async def context(self, conversation_id: str, budget_tokens: int, *, use_cache: bool = True) -> ChatContext:
        return await self._http.run(calls.context(conversation_id, budget_tokens))

    async def search(
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
        return await self._http.run(calls.search(query, k, user, conversation_id, role, since, until))

    async def purge(self, older_than: timedelta | None = None, *, dry_run: bool = False) -> PurgeReport:
        return await self._http.run(calls.purge(older_than, dry_run))

    async def relex(self, **_: Any) -> MessageRelexReport:
        raise _operator_only("relex")

    async def erase_user(self, user: int | str) -> ErasureReport:
        raise _operator_only("erase_user")
