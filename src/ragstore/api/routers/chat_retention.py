"""Routes of issue 18 (chat_retention)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["conversations"])
