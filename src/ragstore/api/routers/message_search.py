"""Routes of issue 18 (message_search)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["conversations"])
