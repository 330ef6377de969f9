"""Routes of issue 18 (conversations)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["conversations"])
