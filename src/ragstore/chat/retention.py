"""Retention and erasure: conversations removed for good, and everything of one user erased.

Purge removes what nobody may read any more (soft-deleted conversations), what has expired (`expires_at`),
and, when asked, what has been idle too long (`updated_at` older than the cut-off). The foreign keys cascade
from a conversation to its messages, their feedback and their terms (and the FTS5 triggers fire for the
cascaded rows), so one DELETE of conversation ids removes the whole tree. Batches of `PURGE_BATCH`
conversations, each its own transaction with its own audit record: a purge of millions never holds the
write lock for long, and no row is ever gone without the record that says so.

Erasure (a user's right to be forgotten) removes the user's conversations (with their messages, feedback and
terms), the ratings they gave elsewhere, their sessions, their API keys (and the keys' grants), and the user
row itself; their rows in the usage log keep their counts (the operator's accounting) but lose what points
at the person (user id, key id, client address). All of it happens in one transaction with the `user.erase`
audit record, which holds counts and the user's id, never content or the e-mail address. The audit log's
earlier rows are append-only evidence and keep the actor names they were written with (`user:<e-mail>`);
docs/chat_retention.md says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from ragstore.chat.access import sees_everything
from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.chat_models import Conversation, Message, MessageFeedback
from ragstore.db.engine import Database
from ragstore.db.security_models import ApiKey, ApiUsageLog, User, UserSession
from ragstore.errors import Forbidden, InvalidInput
from ragstore.schemas.chat import ErasureReport, PurgeReport
from ragstore.security.audit import AuditTrail
from ragstore.security.context import current_call
from ragstore.security.user_lookup import find_user

__all__ = ["MAX_PURGE_AGE", "PURGE_BATCH", "ChatRetention"]

PURGE_BATCH = 500
MAX_PURGE_AGE = timedelta(days=36_500)


@dataclass(slots=True)
class ChatRetention:
    db: Database
    audit_trail: AuditTrail
    clock: Clock = SYSTEM_CLOCK
    # Called with the public key ids of the keys an erasure removed, so this process stops accepting them at
    # once (other processes within the key cache's few seconds); wiring passes KeyService.forget.
    forget_key: Callable[[str], None] = lambda key_id: None

    def _purgeable(self, older_than: timedelta | None) -> ColumnElement[bool]:
        now = self.clock.now()
        gone = or_(
            Conversation.deleted_at.is_not(None),
            and_(Conversation.expires_at.is_not(None), Conversation.expires_at <= now),
        )
        return gone if older_than is None else or_(gone, Conversation.updated_at < now - older_than)

    def purge(self, older_than: timedelta | None = None, *, dry_run: bool = False) -> PurgeReport:
        """Remove soft-deleted and expired conversations for good, and with `older_than` every conversation
        idle (no message, no update) for longer; `dry_run` only counts. Admins and the operator only."""
        if not sees_everything(current_call().principal):
            raise Forbidden("purging conversations needs the admin role")
        if older_than is not None and not timedelta(0) < older_than <= MAX_PURGE_AGE:
            raise InvalidInput("older_than must be more than zero and at most 100 years")
        condition = self._purgeable(older_than)
        if dry_run:
            with self.db.read() as s:
                conversations = int(s.scalar(select(func.count()).select_from(Conversation).where(condition)) or 0)
                messages = int(
                    s.scalar(
                        select(func.count())
                        .select_from(Message)
                        .join(Conversation, Conversation.id == Message.conversation_id)
                        .where(condition)
                    )
                    or 0
                )
            return PurgeReport(conversations=conversations, messages=messages, dry_run=True)
        total_conversations = total_messages = 0
        while True:
            removed = self.db.write(lambda s: self._purge_batch(s, condition, older_than))
            if removed is None:
                break
            total_conversations += removed[0]
            total_messages += removed[1]
        return PurgeReport(conversations=total_conversations, messages=total_messages, dry_run=False)

    def _purge_batch(
        self, s: Session, condition: ColumnElement[bool], older_than: timedelta | None
    ) -> tuple[int, int] | None:
        ids = list(s.scalars(select(Conversation.id).where(condition).order_by(Conversation.id).limit(PURGE_BATCH)))
        if not ids:
            return None
        messages = int(s.scalar(select(func.count()).where(Message.conversation_id.in_(ids))) or 0)
        s.execute(delete(Conversation).where(Conversation.id.in_(ids)).execution_options(synchronize_session=False))
        self.audit_trail.append(
            s,
            "chat.purge",
            target=f"{len(ids)} conversations",
            details={
                "conversations": len(ids),
                "messages": messages,
                "older_than_s": None if older_than is None else int(older_than.total_seconds()),
            },
        )
        return len(ids), messages

    def erase_user(self, user: int | str) -> ErasureReport:
        """Erase one user (id or e-mail) and everything of theirs; admins and the operator only."""
        if not sees_everything(current_call().principal):
            raise Forbidden("erasing a user needs the admin role")
        erased: list[str] = []

        def unit(s: Session) -> ErasureReport:
            row = find_user(s, user, for_update=True)
            uid = int(row.id)
            actor = f"user:{row.email}"
            conversation_ids = select(Conversation.id).where(Conversation.owner_user_id == uid)
            messages = int(s.scalar(select(func.count()).where(Message.conversation_id.in_(conversation_ids))) or 0)
            conversations = int(
                s.scalar(select(func.count()).select_from(Conversation).where(Conversation.owner_user_id == uid)) or 0
            )
            keys = list(s.execute(select(ApiKey.id, ApiKey.key_id).where(ApiKey.owner_id == uid)))
            key_ids = [int(k.id) for k in keys]
            erased.extend(str(k.key_id) for k in keys)
            # The ratings they gave anywhere: as their session (`user:<e-mail>`) or through a key of theirs.
            raters = [actor, f"user:{uid}", *(f"key:{k.key_id}" for k in keys)]
            own_messages = select(Message.id).where(Message.conversation_id.in_(conversation_ids))
            feedback = int(
                s.scalar(
                    select(func.count())
                    .select_from(MessageFeedback)
                    .where(or_(MessageFeedback.created_by.in_(raters), MessageFeedback.message_id.in_(own_messages)))
                )
                or 0
            )
            s.execute(delete(MessageFeedback).where(MessageFeedback.created_by.in_(raters)))
            s.execute(delete(Conversation).where(Conversation.owner_user_id == uid))
            personal = or_(ApiUsageLog.user_id == uid, ApiUsageLog.api_key_id.in_(key_ids or [-1]))
            scrubbed = _rowcount(
                s.execute(
                    update(ApiUsageLog)
                    .where(personal)
                    .values(user_id=None, api_key_id=None, client_address="")
                    .execution_options(synchronize_session=False)
                )
            )
            sessions = _rowcount(s.execute(delete(UserSession).where(UserSession.user_id == uid)))
            s.execute(delete(ApiKey).where(ApiKey.owner_id == uid))  # their grants go by the foreign key
            s.execute(delete(User).where(User.id == uid))
            report = ErasureReport(
                user_id=uid,
                conversations=conversations,
                messages=messages,
                feedback=feedback,
                sessions=sessions,
                keys=len(key_ids),
                usage_rows_scrubbed=scrubbed,
            )
            details = report.model_dump()
            self.audit_trail.append(s, "user.erase", target=f"user:{uid}", details=details)
            return report

        report = self.db.write(unit)
        for key_id in erased:
            self.forget_key(key_id)
        return report


def _rowcount(result: object) -> int:
    """The rows an UPDATE or DELETE touched (a CursorResult's `rowcount`, which the Result type hides)."""
    return int(getattr(result, "rowcount", 0) or 0)
