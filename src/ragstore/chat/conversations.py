"""Conversations: create, read, list, update (optimistic concurrency) and soft delete.

Every read and write goes through `find_visible`, which applies `chat.access.visible_conversation`: a
conversation outside the caller's scope, soft-deleted, or named by an id that is not a ULID is a NotFound,
the same answer in every case, so an id tells nobody whether someone else's conversation exists.

A listing is ordered by last activity (`updated_at`, then id, both descending) and paged by a cursor that
encodes the last row's position, so a page is a range scan whatever the offset and rows added meanwhile do
not shift what the next page returns.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, column, exists, func, or_, select, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from ragstore.chat.access import sees_everything, visible_conversation
from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.chat_models import Conversation, Message
from ragstore.db.engine import Database
from ragstore.db.models import Collection, CollectionStatus
from ragstore.db.ulids import new_ulid
from ragstore.errors import Conflict, Forbidden, InvalidInput, NotFound
from ragstore.schemas.chat import ConversationCreate, ConversationInfo, ConversationPage, ConversationUpdate
from ragstore.security.audit import AuditTrail
from ragstore.security.principal import Principal, Role
from ragstore.security.user_lookup import find_user
from ragstore.valid_text import checked_text

__all__ = [
    "MAX_PAGE",
    "ULID_PATTERN",
    "ConversationStore",
    "find_visible",
    "normal_id",
    "resolve_user_id",
]

# Crockford base32, 26 characters (the first at most 7: 48 bits of time). Validated before any query.
ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
_ULID = re.compile(ULID_PATTERN)
MAX_PAGE = 200


def normal_id(conversation_id: str) -> str:
    """The id in its stored form (upper case); NotFound for anything that is no ULID, before any query."""
    if not isinstance(conversation_id, str) or not _ULID.fullmatch(conversation_id.upper()):
        raise NotFound(f"no conversation {str(conversation_id)[:40]!r}")
    return conversation_id.upper()


def find_visible(session: Session, principal: Principal, conversation_id: str, *, lock: bool = False) -> Conversation:
    """The conversation if `principal` may see it, else NotFound (also for an id that is no ULID)."""
    wanted = normal_id(conversation_id)
    query = select(Conversation).where(Conversation.id == wanted, visible_conversation(principal))
    row = session.scalars(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no conversation {conversation_id[:40]!r}")
    return row


def resolve_user_id(session: Session, user: int | str) -> int:
    """A user's id from an id or an e-mail address; NotFound naming what was asked."""
    return find_user(session, checked_text(user, "user") if isinstance(user, str) else user).id


def check_collections(session: Session, principal: Principal, names: list[str]) -> list[str]:
    """The names, deduplicated in order, after checking each exists and is readable by `principal` (404 if
    not, as for any collection the caller may not know about)."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return []
    found = set(
        session.scalars(
            select(Collection.name).where(Collection.name.in_(unique), Collection.status == CollectionStatus.ACTIVE)
        )
    )
    for name in unique:
        if name not in found or not principal.allows(Role.READ, name):
            raise NotFound(f"no collection named {name!r}")
    return unique


def _has_collection(session: Session, name: str) -> ColumnElement[bool]:
    """Conversations whose `collections` list holds `name`: the one dialect-specific condition of this module
    (JSONB containment on PostgreSQL, `json_each` on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(Conversation.collections, JSONB).contains([name])
    each = func.json_each(Conversation.collections).table_valued("value")
    return exists(select(1).select_from(each).where(column("value") == name))


def _encode_cursor(row: Conversation) -> str:
    at = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    raw = f"{at.astimezone(UTC).isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, conversation_id = raw.split("|", 1)
        when = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this listing handed out") from exc
    if not _ULID.fullmatch(conversation_id) or when.tzinfo is None:
        raise InvalidInput("cursor is not one this listing handed out")
    return when, conversation_id


def info(row: Conversation) -> ConversationInfo:
    return ConversationInfo.model_validate(row)


@dataclass(slots=True)
class ConversationStore:
    db: Database
    audit_trail: AuditTrail
    clock: Clock = SYSTEM_CLOCK

    def create(self, principal: Principal, spec: ConversationCreate) -> ConversationInfo:
        """A new conversation owned by the caller's user (or, for an admin, the user named)."""

        def unit(s: Session) -> ConversationInfo:
            owner = principal.user_id
            if spec.user is not None:
                named = resolve_user_id(s, spec.user)
                if named != principal.user_id and not sees_everything(principal):
                    raise Forbidden("only an admin may create a conversation for another user")
                owner = named
            collections = check_collections(s, principal, spec.collections)
            now = self.clock.now()
            row = Conversation(
                id=new_ulid(now),
                owner_user_id=owner,
                end_user_id=spec.end_user_id,
                created_by_key_id=principal.key_id,
                collections=collections,
                title=spec.title,
                summary="",
                message_count=0,
                is_active=True,
                metadata_=dict(spec.metadata),
                version=1,
                created_at=now,
                updated_at=now,
                expires_at=spec.expires_at,
            )
            s.add(row)
            s.flush()
            return info(row)

        return self.db.write(unit)

    def get(self, principal: Principal, conversation_id: str) -> ConversationInfo:
        with self.db.read() as s:
            return info(find_visible(s, principal, conversation_id))

    def list(
        self,
        principal: Principal,
        *,
        user: int | str | None = None,
        end_user_id: str | None = None,
        is_active: bool | None = None,
        collection: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ConversationPage:
        """The caller's visible conversations, newest activity first, `limit` (1..MAX_PAGE) at a time."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
        for name, value in (("end_user_id", end_user_id), ("collection", collection), ("cursor", cursor)):
            if value is not None:
                checked_text(value, name)
        with self.db.read() as s:
            query = select(Conversation).where(visible_conversation(principal))
            if user is not None:
                query = query.where(Conversation.owner_user_id == resolve_user_id(s, user))
            if end_user_id is not None:
                query = query.where(Conversation.end_user_id == end_user_id)
            if is_active is not None:
                query = query.where(Conversation.is_active.is_(is_active))
            if collection is not None:
                query = query.where(_has_collection(s, collection))
            if cursor:
                at, last_id = _decode_cursor(cursor)
                query = query.where(
                    or_(
                        Conversation.updated_at < at,
                        and_(Conversation.updated_at == at, Conversation.id < last_id),
                    )
                )
            rows = list(
                s.scalars(query.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit + 1))
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return ConversationPage(
            conversations=[info(r) for r in rows],
            next_cursor=_encode_cursor(rows[-1]) if more and rows else None,
        )

    def update(self, principal: Principal, conversation_id: str, change: ConversationUpdate) -> ConversationInfo:
        """Apply `change` if `change.version` is the stored version (else Conflict); the version goes up by one.

        The check and the bump are one conditional UPDATE, so of two writers holding the same version exactly
        one wins, on either dialect, without a lock held across the caller's think time.
        """

        def unit(s: Session) -> ConversationInfo:
            row = find_visible(s, principal, conversation_id)
            values: dict[str, Any] = {}
            if change.title is not None:
                values["title"] = change.title
            if change.summary is not None:
                values["summary"] = change.summary
            if change.is_active is not None:
                values["is_active"] = change.is_active
            if change.metadata is not None:
                values["metadata_"] = dict(change.metadata)
            if change.collections is not None:
                values["collections"] = check_collections(s, principal, change.collections)
            if change.active_message_id is not None:
                check_message_of(s, row.id, change.active_message_id)
                values["active_message_id"] = change.active_message_id
            return _bump(s, row, change.version, values, self.clock.now())

        return self.db.write(unit)

    def switch_branch(self, principal: Principal, conversation_id: str, message_id: int) -> ConversationInfo:
        """Make `message_id` (a message of this conversation) the active leaf; bumps the version."""

        def unit(s: Session) -> ConversationInfo:
            row = find_visible(s, principal, conversation_id, lock=True)
            check_message_of(s, row.id, message_id)
            return _bump(s, row, row.version, {"active_message_id": message_id}, self.clock.now())

        return self.db.write(unit)

    def delete(self, principal: Principal, conversation_id: str) -> None:
        """Soft delete: from this commit on, no read returns the conversation; a purge removes it for good.
        The audit record names the conversation and its size, never its content."""

        def unit(s: Session) -> None:
            row = find_visible(s, principal, conversation_id, lock=True)
            now = self.clock.now()
            done = s.execute(
                update(Conversation)
                .where(Conversation.id == row.id, Conversation.deleted_at.is_(None))
                .values(deleted_at=now, updated_at=now, version=Conversation.version + 1)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFound(f"no conversation {conversation_id[:40]!r}")
            self.audit_trail.append(
                s,
                "conversation.delete",
                target=f"conversation:{row.id}",
                details={"messages": int(row.message_count), "owner_user_id": row.owner_user_id},
            )

        self.db.write(unit)


def check_message_of(s: Session, conversation_id: str, message_id: int) -> None:
    """InvalidInput unless `message_id` is a message of this conversation."""
    owner = s.scalar(select(Message.conversation_id).where(Message.id == message_id)) if message_id < 2**63 else None
    if owner != conversation_id:
        raise InvalidInput(f"message {message_id} is not a message of conversation {conversation_id}")


def _bump(s: Session, row: Conversation, version: int, values: dict[str, Any], now: datetime) -> ConversationInfo:
    done = s.execute(
        update(Conversation)
        .where(Conversation.id == row.id, Conversation.version == version, Conversation.deleted_at.is_(None))
        .values(**values, version=Conversation.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"conversation {row.id} changed since version {version} was read; read it again and retry",
            details={"version": version},
        )
    s.expire(row)
    return info(s.get_one(Conversation, row.id))
