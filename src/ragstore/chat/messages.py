"""Messages and their feedback: appending a turn, reading a branch, rating a message.

Appending is one transaction that locks the conversation row (PostgreSQL `FOR UPDATE`; SQLite's write units
hold the database lock from `BEGIN IMMEDIATE`), reads the active leaf, inserts the message and its
`message_lexemes` row, and moves the counters with `message_count = message_count + 1`. Writers of one
conversation therefore queue on its row: `message_count` stays exact and each new message's default parent
is the leaf the previous writer left, so fifty concurrent appends make one chain, not fifty siblings.

A branch is the path from a leaf to the root through `parent_id`, read with one recursive query
(`branch_path`) that walks the primary key, newest first, and can stop as soon as a token budget is spent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import CTE, Select, Table, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.chat.access import visible_conversation
from ragstore.chat.conversations import find_visible, info
from ragstore.chat.lexemes import message_lexeme_row, write_message_lexemes
from ragstore.chat.references import with_sources
from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.chat_models import Conversation, Message, MessageFeedback
from ragstore.db.engine import Database
from ragstore.errors import Conflict, InvalidInput, NotFound
from ragstore.schemas.chat import ConversationDetail, FeedbackInfo, FeedbackInput, MessageCreate, MessageInfo
from ragstore.security.principal import Principal

__all__ = ["MAX_SHOWN", "MessageStore", "branch_messages", "branch_path", "message_info"]

MAX_SHOWN = 10_000  # messages one `show` returns at most (the newest of the branch)
STARS = range(1, 6)
THUMBS = (-1, 1)


def message_info(row: Message) -> MessageInfo:
    return MessageInfo.model_validate(row)


def branch_path(leaf_id: int, conversation_id: str, *, budget: int | None = None) -> CTE:
    """The path from `leaf_id` to the root: `id`, `depth` (0 = the leaf) and `total` (tokens from the leaf
    down to this message, inclusive). With `budget`, the walk stops after the first message that brings
    `total` over it, so a long conversation costs what fits, not its whole length."""
    seed = select(
        Message.id.label("id"),
        Message.parent_id.label("parent_id"),
        literal(0).label("depth"),
        Message.token_count.label("total"),
    ).where(Message.id == leaf_id, Message.conversation_id == conversation_id)
    path = seed.cte("branch_path", recursive=True)
    step = select(Message.id, Message.parent_id, path.c.depth + 1, path.c.total + Message.token_count).where(
        Message.id == path.c.parent_id, Message.conversation_id == conversation_id
    )
    if budget is not None:
        step = step.where(path.c.total <= budget)
    return path.union_all(step)


MESSAGES = cast(Table, Message.__table__)
_MESSAGE_LIST = TypeAdapter(list[MessageInfo])


def branch_messages(
    s: Session, leaf_id: int, conversation_id: str, *, budget: int | None = None, limit: int | None = None
) -> tuple[list[MessageInfo], list[int]]:
    """The messages along the branch, leaf first, and the running token total at each.

    Read as plain rows and validated in one pydantic-core pass: no ORM objects (their instrumentation and
    the garbage they leave cost more than the query on a long branch)."""
    path = branch_path(leaf_id, conversation_id, budget=budget)
    query: Select[Any] = select(*MESSAGES.c, path.c.total).join(path, MESSAGES.c.id == path.c.id).order_by(path.c.depth)
    if limit is not None:
        query = query.limit(limit)
    rows = s.execute(query).all()
    plain = []
    for row in rows:
        fields = dict(row._mapping)
        fields["metadata_"] = fields.pop("metadata")
        plain.append(fields)
    return _MESSAGE_LIST.validate_python(plain), [int(row.total) for row in rows]


@dataclass(slots=True)
class MessageStore:
    db: Database
    analyze: Callable[[str], Sequence[str]]  # the store's configured analyzer: message terms for search
    count_tokens: Callable[[str], int]  # the embedder's tokenizer, or the chunker's estimate
    clock: Clock = SYSTEM_CLOCK

    def add(self, principal: Principal, conversation_id: str, spec: MessageCreate) -> MessageInfo:
        """Append `spec` under its parent (default: the active leaf); it becomes the active leaf."""
        if "\x00" in spec.content:
            raise InvalidInput("a message's content cannot hold NUL characters")
        tokens = self.count_tokens(spec.content)  # outside the transaction: the lock is held for SQL only
        terms = list(self.analyze(spec.content))

        def unit(s: Session) -> MessageInfo:
            conversation = find_visible(s, principal, conversation_id, lock=True)
            parent = spec.parent_id if spec.parent_id is not None else conversation.active_message_id
            if spec.parent_id is not None:
                owner = s.scalar(select(Message.conversation_id).where(Message.id == spec.parent_id))
                if owner != conversation.id:
                    raise InvalidInput(f"parent_id {spec.parent_id} is not a message of this conversation")
            now = self.clock.now()
            references = with_sources(s, spec.references)
            row = Message(
                conversation_id=conversation.id,
                parent_id=parent,
                role=spec.role,
                content=spec.content,
                agent_used=spec.agent_used,
                routing_info=dict(spec.routing_info),
                references=references,
                token_count=tokens,
                prompt_tokens=spec.prompt_tokens,
                completion_tokens=spec.completion_tokens,
                latency_ms=spec.latency_ms,
                status=spec.status,
                metadata_=dict(spec.metadata),
                created_at=now,
            )
            s.add(row)
            s.flush()
            write_message_lexemes(s, [message_lexeme_row(row.id, conversation.id, terms)])
            values: dict[str, Any] = {
                "message_count": Conversation.message_count + 1,
                "active_message_id": row.id,
                "updated_at": now,
            }
            if spec.agent_used:
                values["last_agent_used"] = spec.agent_used
            s.execute(
                update(Conversation)
                .where(Conversation.id == conversation.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return message_info(row)

        return self.db.write(unit)

    def show(
        self, principal: Principal, conversation_id: str, *, all_branches: bool = False, limit: int = 1000
    ) -> ConversationDetail:
        """The conversation and its active branch oldest first (`all_branches`: every message, by id). At most
        `limit` messages: the newest of them, `truncated` telling that older ones were left out."""
        if not 1 <= limit <= MAX_SHOWN:
            raise InvalidInput(f"limit must be 1 to {MAX_SHOWN}")
        with self.db.read() as s:
            conversation = find_visible(s, principal, conversation_id)
            rows: list[MessageInfo] = []
            if all_branches:
                newest = s.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation.id)
                    .order_by(Message.id.desc())
                    .limit(limit + 1)
                )
                rows = [message_info(m) for m in newest]
            elif conversation.active_message_id is not None:
                rows, _ = branch_messages(s, conversation.active_message_id, conversation.id, limit=limit + 1)
            truncated = len(rows) > limit
            messages = list(reversed(rows[:limit]))
            return ConversationDetail(conversation=info(conversation), messages=messages, truncated=truncated)

    def feedback(self, principal: Principal, message_id: int, spec: FeedbackInput) -> FeedbackInfo:
        """Rate a message of a conversation the caller may see; a second rating from the same source
        replaces the first (one per message and source)."""
        if spec.scale == "thumbs" and spec.rating not in THUMBS:
            raise InvalidInput("a thumbs rating is -1 (down) or 1 (up)", details={"rating": spec.rating})
        if spec.scale == "stars" and spec.rating not in STARS:
            raise InvalidInput("a stars rating is 1 to 5", details={"rating": spec.rating})

        def unit(s: Session) -> FeedbackInfo:
            found = s.scalar(
                select(Message.id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.id == message_id, visible_conversation(principal))
            )
            if found is None:
                raise NotFound(f"no message {message_id}")
            now = self.clock.now()
            row = s.scalars(
                select(MessageFeedback)
                .where(MessageFeedback.message_id == message_id, MessageFeedback.source == spec.source)
                .with_for_update()
            ).first()
            if row is None:
                row = MessageFeedback(message_id=message_id, source=spec.source, created_at=now)
                s.add(row)
            row.rating, row.scale, row.comment = spec.rating, spec.scale, spec.comment
            row.created_by, row.updated_at = principal.actor[:200], now
            s.flush()
            return FeedbackInfo.model_validate(row)

        try:
            return self.db.write(unit)
        except (Conflict, IntegrityError):  # a concurrent first rating from the same source won the insert
            return self.db.write(unit)
