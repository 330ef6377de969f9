"""Whose conversations a principal may see: the one rule every chat read and write applies.

- a principal holding `admin` on every collection (an admin key or user, the CLI operator, the scheduler)
  sees every conversation;
- a user's session, or a key that belongs to a user, sees the conversations that user owns;
- a key of no user (a chat back end's service key) sees the conversations it created, whatever end user
  they are for.
Soft-deleted conversations are seen by nobody: `visible_conversation` excludes them, so no read can return
one after its delete. A conversation outside the scope is reported as absent (404), never as forbidden, so
an id tells nobody that someone else's conversation exists.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, true

from ragstore.db.chat_models import Conversation
from ragstore.security.principal import Principal, Role

__all__ = ["owner_scope", "sees_everything", "visible_conversation"]


def sees_everything(principal: Principal) -> bool:
    return principal.allows(Role.ADMIN)


def owner_scope(principal: Principal) -> ColumnElement[bool]:
    """The conversations (deleted or not) that belong to `principal`'s scope."""
    if sees_everything(principal):
        return true()
    if principal.user_id is not None:
        return Conversation.owner_user_id == principal.user_id
    if principal.key_id is not None:
        return Conversation.created_by_key_id == principal.key_id
    return false()


def visible_conversation(principal: Principal) -> ColumnElement[bool]:
    """The conversations `principal` may read: in its scope and not soft-deleted."""
    return and_(owner_scope(principal), Conversation.deleted_at.is_(None))
